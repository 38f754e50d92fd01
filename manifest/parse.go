package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// source is what Parse learned about the file besides its values. Validate
// uses it to give validation problems a line and column too.
//
// Positions take a second pass of the TOML parser, about a fifth of a Load,
// and only a problem needs one: pos computes them on first use, so a
// manifest without problems never pays for them.
type source struct {
	file    string                     // path for error messages
	pos     func() map[string]position // field path -> where its key first appears
	written map[string]bool            // field paths the file sets, recorded by the decoder
	zeros   []zeroKey                  // keys written with a zero value (which would mean "default")
}

type position struct{ line, column int }

// zeroKey is a key the file sets to zero, "" or "0/s".
type zeroKey struct {
	field string   // display path, as in Problem.Field
	keys  []string // raw TOML keys, to look the default up
}

// Parse decodes an airlock.toml document strictly: a key that no field
// matches is an error, and so is a value of the wrong type. The *Error lists
// every such problem with its line and column. Parse does not validate; see
// Validate and Load.
func Parse(data []byte) (*Manifest, error) {
	m, problems := decode(data)
	if len(problems) > 0 {
		return nil, errorOf(FileName, problems)
	}
	return m, nil
}

// Load reads DIR/airlock.toml, sets Dir to DIR's absolute path and validates
// the result, so the *Error lists decode and validation problems together.
//
// Load checks that the entry program exists, so a tool that must read the
// manifest of a plugin not built yet (such as `airlock build`) should use
// Parse instead.
func Load(dir string) (*Manifest, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	file := filepath.Join(dir, FileName)
	data, err := readManifest(file)
	if err != nil {
		return nil, err
	}
	return load(data, file, abs)
}

// maxManifestSize bounds what Load reads and Parse accepts: plugin folders
// may come from people the host does not trust.
const maxManifestSize = 1 << 20

// readManifest reads file, refusing anything but a regular file (a FIFO
// would block the reader forever) and stopping after maxManifestSize+1
// bytes.
func readManifest(file string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w (a plugin folder holds its %s)", err, FileName)
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{File: file, Problems: []Problem{{
			Message: "not a regular file (" + fi.Mode().Type().String() + ")",
			Fix:     "make " + FileName + " a plain text file",
		}}}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	return data, nil
}

// load is Load after the read: decode, then validate what decoded, skipping
// validation problems about fields that already failed to decode.
func load(data []byte, file, dir string) (*Manifest, error) {
	m, problems := decode(data)
	if m == nil {
		return nil, errorOf(file, problems)
	}
	m.src.file = file
	m.Dir = dir
	for _, p := range m.validate() {
		if !overlaps(p.Field, problems) {
			problems = append(problems, p)
		}
	}
	if err := errorOf(file, problems); err != nil {
		return nil, err
	}
	return m, nil
}

// overlaps reports whether field is, contains or lies inside a field of an
// existing problem.
func overlaps(field string, problems []Problem) bool {
	inside := func(a, b string) bool {
		return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
	}
	for _, p := range problems {
		if inside(field, p.Field) || inside(p.Field, field) {
			return true
		}
	}
	return false
}

// decode parses data into a Manifest. It returns a nil Manifest only for a
// TOML syntax error; otherwise the Manifest holds every value that decoded.
func decode(data []byte) (*Manifest, []Problem) {
	if len(data) > maxManifestSize {
		return nil, []Problem{{
			Message: fmt.Sprintf("larger than %s", Size(maxManifestSize)),
			Fix:     "a manifest is a short hand-written file; check that this is the right file",
		}}
	}
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		var de *toml.DecodeError
		if !errors.As(err, &de) {
			return nil, []Problem{{Message: err.Error(), Fix: "check that the file is TOML"}}
		}
		line, col := de.Position()
		field := ""
		for _, k := range de.Key() {
			field = child(field, k)
		}
		return nil, []Problem{{
			Field: field, Line: line, Column: col,
			Message: "TOML syntax: " + strings.TrimPrefix(de.Error(), "toml: "),
			Fix:     "correct the TOML syntax here (see https://toml.io)",
		}}
	}
	data = bytes.Clone(data) // pos may parse it long after the caller reused its buffer
	d := &decoder{src: &source{
		file:    FileName,
		pos:     sync.OnceValue(func() map[string]position { return positions(data) }),
		written: map[string]bool{},
	}}
	m := &Manifest{}
	d.table("", nil, tree, reflect.ValueOf(m).Elem())
	m.src = d.src
	return m, d.problems
}

// positions maps every key's field path to where it first appears. It runs
// after go-toml accepted the document, so the parser cannot fail here.
func positions(data []byte) map[string]position {
	lines := newLineIndex(data)
	pos := map[string]position{}
	var p unstable.Parser
	p.Reset(data)

	// key walks a possibly dotted key below prefix, noting each part.
	key := func(prefix string, it unstable.Iterator) string {
		for it.Next() {
			prefix = child(prefix, string(it.Node().Data))
			if _, seen := pos[prefix]; !seen {
				pos[prefix] = lines.at(int(it.Node().Raw.Offset))
			}
		}
		return prefix
	}
	var value func(field string, n *unstable.Node)
	value = func(field string, n *unstable.Node) {
		switch n.Kind {
		case unstable.InlineTable:
			for it := n.Children(); it.Next(); {
				kv := it.Node()
				value(key(field, kv.Key()), kv.Value())
			}
		case unstable.Array:
			i := 0
			for it := n.Children(); it.Next(); i++ {
				e := it.Node()
				f := elem(field, i)
				if e.Raw.Length > 0 {
					pos[f] = lines.at(int(e.Raw.Offset))
				}
				value(f, e)
			}
		}
	}

	table := ""
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = key("", e.Key())
		case unstable.ArrayTable:
			table = key("", e.Key())
			n := arrays[table]
			arrays[table]++
			table = elem(table, n)
		case unstable.KeyValue:
			value(key(table, e.Key()), e.Value())
		}
	}
	return pos
}

// lineIndex turns byte offsets into 1-based lines and columns.
type lineIndex []int // offset of the start of each line

func newLineIndex(data []byte) lineIndex {
	starts := lineIndex{0}
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

func (l lineIndex) at(offset int) position {
	i := sort.Search(len(l), func(i int) bool { return l[i] > offset }) - 1
	return position{line: i + 1, column: offset - l[i] + 1}
}

// at returns where field (or failing that, its nearest enclosing table)
// appears in the file, or the zero position.
func (s *source) at(field string) position {
	if s == nil || s.pos == nil {
		return position{}
	}
	pos := s.pos()
	for field != "" {
		if p, ok := pos[field]; ok {
			return p
		}
		field = parentField(field)
	}
	return position{}
}

// parentField strips the last part of a field path, minding quoted parts.
func parentField(field string) string {
	cut, quoted := 0, false
	for i := 0; i < len(field); i++ {
		switch c := field[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case (c == '.' || c == '[') && !quoted:
			cut = i
		}
	}
	return field[:cut]
}

// present reports whether field was written in the file.
func (s *source) present(field string) bool {
	return s != nil && s.written[field]
}
