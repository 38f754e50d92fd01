package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"heading and paragraph", "# Hello *world*\n\nSome **bold** text.", "<h1 id=\"hello-world\">Hello <em>world</em></h1>\n<p>Some <strong>bold</strong> text.</p>\n"},
		{"escapes html", "<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"},
		{"code span keeps markup", "use `a*b*c` here", "<p>use <code>a*b*c</code> here</p>\n"},
		{"fenced code", "```go\nx := <y>\n```", "<pre><code class=\"language-go\">x := &lt;y&gt;\n</code></pre>\n"},
		{"lists", "- one\n- two\n\n1. first\n2. second", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<ol>\n<li>first</li>\n<li>second</li>\n</ol>\n"},
		{"safe link", "[docs](https://example.com/a?b=1&c=2)", "<p><a href=\"https://example.com/a?b=1&amp;c=2\">docs</a></p>\n"},
		{"javascript link dropped", "[x](javascript:alert(1))", "<p>x</p>\n"},
		{"blockquote and rule", "> quoted\n\n---", "<blockquote>\n<p>quoted</p>\n</blockquote>\n<hr>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := Render(tc.in); got != tc.want {
				t.Fatalf("Render(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRender_TOC(t *testing.T) {
	_, toc := Render("# Intro\n## Setup `go`\n## Setup go\n### [Link](https://x.y)")
	want := []Heading{{1, "Intro", "intro"}, {2, "Setup go", "setup-go"}, {2, "Setup go", "setup-go-1"}, {3, "Link", "link"}}
	if !reflect.DeepEqual(toc, want) {
		t.Fatalf("toc = %+v", toc)
	}
}

func FuzzRender(f *testing.F) {
	f.Add("# a\n- b\n> c\n```\nd\n```\n[e](f) *g* **h** `i`")
	f.Fuzz(func(t *testing.T, s string) {
		out, _ := Render(s)
		if strings.Contains(out, "<script") {
			t.Fatalf("unescaped script tag in %q", out)
		}
	})
}
