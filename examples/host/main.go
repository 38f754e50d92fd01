// Command host is a complete program that embeds Airlock: it loads the
// markdown and pricing example plugins, renders a document's table of
// contents, prices an order, and shows how failures come back typed.
//
//	go run ./examples/host -markdown examples/markdown -pricing examples/pricing README.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/airlockhq/airlock"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		os.Exit(1)
	}
}

// Heading mirrors the markdown plugin's toc entries.
type Heading struct {
	Level  int    `json:"level"`
	Text   string `json:"text"`
	Anchor string `json:"anchor"`
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("host", flag.ContinueOnError)
	mdDir := fs.String("markdown", "examples/markdown", "the markdown plugin's folder")
	pricingDir := fs.String("pricing", "examples/pricing", "the pricing plugin's folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: host [-markdown DIR] [-pricing DIR] FILE.md")
	}
	doc, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}

	// One host owns both plugins; closing it stops them.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := airlock.NewHostWithConfig(ctx, airlock.NewHostConfig().WithLogger(logger))
	if err != nil {
		return err
	}
	defer host.Close(ctx)
	md, err := host.Load(ctx, *mdDir)
	if err != nil {
		return err
	}
	pricing, err := host.Load(ctx, *pricingDir)
	if err != nil {
		return err
	}

	// A typed call: JSON in, JSON out.
	toc, err := airlock.CallJSON[[]Heading](ctx, md, "toc", map[string]string{"markdown": string(doc)})
	if err != nil {
		return fmt.Errorf("table of contents: %w", err)
	}
	fmt.Fprintf(out, "Contents of %s:\n", fs.Arg(0))
	for _, h := range toc {
		fmt.Fprintf(out, "%*s- %s (#%s)\n", 2*(h.Level-1), "", h.Text, h.Anchor)
	}

	type quote struct {
		Total int64 `json:"total_cents"`
	}
	q, err := airlock.CallJSON[quote](ctx, pricing, "quote", map[string]any{
		"items": []map[string]any{{"sku": "widget", "quantity": 12}, {"sku": "cable", "quantity": 3}}, "region": "us-ca"})
	if err != nil {
		return fmt.Errorf("quote: %w", err)
	}
	fmt.Fprintf(out, "Order total: $%d.%02d\n", q.Total/100, q.Total%100)

	// Failures are typed: the plugin rejected the input, and the host
	// knows why without parsing strings.
	_, err = pricing.Call(ctx, "quote", []byte(`{"items":[],"region":"us-ca"}`))
	var ce *airlock.CallError
	if errors.As(err, &ce) && errors.Is(err, airlock.ErrBadInput) {
		fmt.Fprintf(out, "Empty order refused: %s\n", ce.Code)
	}
	// A deadline reaches the plugin's handler.
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	if _, err := md.Call(short, "render", doc); errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(out, "A render with a 1ns deadline: deadline exceeded")
	}
	return nil
}
