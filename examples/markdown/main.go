// Command markdown is an Airlock plugin that renders Markdown to HTML and
// extracts a document's table of contents. Rendering untrusted text is a
// classic job to keep out of a service's own process: a pathological input
// costs the plugin, not the host.
package main

import (
	"context"
	"log/slog"

	"github.com/airlockhq/airlock/sdk/go/plugin"
)

// maxInput is the largest document the plugin accepts (the manifest says
// the same to the host).
const maxInput = 1 << 20

func main() {
	p := plugin.New("markdown", "1.0.0")
	slog.SetDefault(p.Logger())
	p.Handle("render", func(ctx context.Context, in []byte) ([]byte, error) {
		html, toc := Render(string(in))
		slog.DebugContext(ctx, "rendered", "bytes_in", len(in), "bytes_out", len(html), "headings", len(toc))
		return []byte(html), nil
	})
	plugin.HandleJSON(p, "toc", func(ctx context.Context, in struct {
		Markdown string `json:"markdown"`
	}) ([]Heading, error) {
		_, toc := Render(in.Markdown)
		if toc == nil {
			toc = []Heading{}
		}
		return toc, nil
	})
	p.Main()
}
