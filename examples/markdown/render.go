package main

import (
	"html"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Heading is one entry of a document's table of contents.
type Heading struct {
	Level  int    `json:"level"`
	Text   string `json:"text"`
	Anchor string `json:"anchor"`
}

// Render converts a practical subset of Markdown to HTML: ATX headings,
// paragraphs, emphasis, inline code, fenced code blocks, block quotes,
// ordered and unordered lists, horizontal rules and links. All text is
// HTML-escaped, and link targets other than http(s), mailto and relative
// ones are dropped, so untrusted input cannot inject markup or script.
func Render(src string) (string, []Heading) {
	r := renderer{anchors: map[string]int{}}
	r.blocks(strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n"))
	return r.out.String(), r.toc
}

type renderer struct {
	out     strings.Builder
	toc     []Heading
	anchors map[string]int
}

var (
	headingRe = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	ulRe      = regexp.MustCompile(`^\s*[-*+]\s+(.*)$`)
	olRe      = regexp.MustCompile(`^\s*(\d{1,9})[.)]\s+(.*)$`)
	hrRe      = regexp.MustCompile(`^\s*(?:(?:-\s*){3,}|(?:\*\s*){3,}|(?:_\s*){3,})$`)
)

func (r *renderer) blocks(lines []string) {
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			i++
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			i = r.fence(lines, i)
		case headingRe.MatchString(line):
			m := headingRe.FindStringSubmatch(line)
			r.heading(len(m[1]), m[2])
			i++
		case hrRe.MatchString(line):
			r.out.WriteString("<hr>\n")
			i++
		case strings.HasPrefix(strings.TrimSpace(line), ">"):
			var inner []string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), ">"); i++ {
				inner = append(inner, strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(lines[i]), ">"), " "))
			}
			r.out.WriteString("<blockquote>\n")
			sub := renderer{anchors: r.anchors}
			sub.blocks(inner)
			r.out.WriteString(sub.out.String())
			r.toc = append(r.toc, sub.toc...)
			r.out.WriteString("</blockquote>\n")
		case ulRe.MatchString(line):
			i = r.list(lines, i, ulRe, "ul")
		case olRe.MatchString(line):
			i = r.list(lines, i, olRe, "ol")
		default:
			var para []string
			for ; i < len(lines) && r.continuesParagraph(lines[i]); i++ {
				para = append(para, strings.TrimSpace(lines[i]))
			}
			r.out.WriteString("<p>")
			r.out.WriteString(inline(strings.Join(para, "\n")))
			r.out.WriteString("</p>\n")
		}
	}
}

func (r *renderer) continuesParagraph(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(t, "```") && !strings.HasPrefix(t, ">") &&
		!headingRe.MatchString(line) && !hrRe.MatchString(line) && !ulRe.MatchString(line) && !olRe.MatchString(line)
}

func (r *renderer) fence(lines []string, i int) int {
	lang := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "```"))
	var code []string
	for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
		code = append(code, lines[i])
	}
	if lang != "" {
		r.out.WriteString(`<pre><code class="language-` + html.EscapeString(lang) + `">`)
	} else {
		r.out.WriteString("<pre><code>")
	}
	r.out.WriteString(html.EscapeString(strings.Join(code, "\n")))
	if len(code) > 0 {
		r.out.WriteString("\n")
	}
	r.out.WriteString("</code></pre>\n")
	return i + 1 // skip the closing fence (or the end)
}

func (r *renderer) heading(level int, text string) {
	anchor := r.anchor(text)
	r.toc = append(r.toc, Heading{Level: level, Text: plain(text), Anchor: anchor})
	n := strconv.Itoa(level)
	r.out.WriteString(`<h` + n + ` id="` + anchor + `">` + inline(text) + `</h` + n + ">\n")
}

// anchor makes a unique, URL-safe id from heading text.
func (r *renderer) anchor(text string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(plain(text)) {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c):
			b.WriteRune(c)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	a := strings.TrimSuffix(b.String(), "-")
	if a == "" {
		a = "section"
	}
	r.anchors[a]++
	if n := r.anchors[a]; n > 1 {
		a += "-" + strconv.Itoa(n-1)
	}
	return html.EscapeString(a)
}

func (r *renderer) list(lines []string, i int, re *regexp.Regexp, tag string) int {
	r.out.WriteString("<" + tag + ">\n")
	for ; i < len(lines) && re.MatchString(lines[i]); i++ {
		m := re.FindStringSubmatch(lines[i])
		r.out.WriteString("<li>" + inline(m[len(m)-1]) + "</li>\n")
	}
	r.out.WriteString("</" + tag + ">\n")
	return i
}

var (
	codeRe   = regexp.MustCompile("`([^`]+)`")
	linkRe   = regexp.MustCompile(`\[([^\]]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)`) // one level of parentheses in the target
	strongRe = regexp.MustCompile(`\*\*([^*]+)\*\*|__([^_]+)__`)
	emRe     = regexp.MustCompile(`\*([^*]+)\*|\b_([^_]+)_\b`)
)

// inline renders emphasis, code and links inside a block. Code spans are
// set aside first so their contents are not formatted.
func inline(s string) string {
	var spans []string
	s = codeRe.ReplaceAllStringFunc(s, func(m string) string {
		spans = append(spans, "<code>"+html.EscapeString(m[1:len(m)-1])+"</code>")
		return "\x00" + strconv.Itoa(len(spans)-1) + "\x00"
	})
	s = html.EscapeString(s)
	s = linkRe.ReplaceAllStringFunc(s, func(m string) string {
		p := linkRe.FindStringSubmatch(m)
		href := html.UnescapeString(p[2])
		if !safeHref(href) {
			return p[1]
		}
		return `<a href="` + html.EscapeString(href) + `">` + p[1] + "</a>"
	})
	s = strongRe.ReplaceAllString(s, "<strong>$1$2</strong>")
	s = emRe.ReplaceAllString(s, "<em>$1$2</em>")
	s = strings.ReplaceAll(s, "\n", "<br>\n")
	for i, span := range spans {
		s = strings.Replace(s, "\x00"+strconv.Itoa(i)+"\x00", span, 1)
	}
	return s
}

func safeHref(h string) bool {
	l := strings.ToLower(h)
	if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "mailto:") {
		return true
	}
	return !strings.Contains(l, ":") // relative links and #anchors
}

// plain strips inline markup from heading text for the table of contents.
func plain(s string) string {
	s = linkRe.ReplaceAllString(s, "$1")
	return strings.NewReplacer("**", "", "__", "", "*", "", "`", "").Replace(s)
}
