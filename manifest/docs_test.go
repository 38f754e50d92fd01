package manifest

import (
	"encoding"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The docs must not drift from the structs: every TOML key of Manifest must
// appear in docs/manifest.md and docs/manifest.schema.json, the schema must
// have no key the structs lack, the documented defaults must be Defaults'
// values, and the documented example must validate.

const (
	docPath    = "../docs/manifest.md"
	schemaPath = "../docs/manifest.schema.json"
)

// tomlKeys lists every key path of t, with "<name>" for map keys, and the
// Go type of each.
func tomlKeys(t reflect.Type, prefix string, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		key := tomlKey(f)
		if key == "" {
			continue
		}
		path := prefix + key
		out[path] = f.Type
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Map:
			tomlKeys(ft.Elem(), path+".<name>.", out)
		case ft.Kind() == reflect.Struct && !isText(ft):
			tomlKeys(ft, path+".", out)
		}
	}
}

func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

func TestDocs_MarkdownHasEveryKey(t *testing.T) {
	md, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]reflect.Type{}
	tomlKeys(reflect.TypeFor[Manifest](), "", keys)
	for path, typ := range keys {
		if typ.Kind() == reflect.Struct && !isText(typ) || typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Map {
			continue // tables have a section; their keys have rows
		}
		if !strings.Contains(string(md), "| `"+path+"` |") {
			t.Errorf("%s has no row for `%s`", docPath, path)
		}
	}
}

// TestDocs_MarkdownDefaults checks the Default column of every reference row
// against Defaults: a value in backticks must equal the default, "—" means
// the default is zero.
func TestDocs_MarkdownDefaults(t *testing.T) {
	md, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	d := (&Manifest{Build: &Build{}, Functions: map[string]Function{"<name>": {}}}).Defaults()
	row := regexp.MustCompile("(?m)^\\| `([a-z_.<>]+)` \\| [^|]+ \\| ([^|]+) \\|")
	rows := row.FindAllStringSubmatch(string(md), -1)
	if len(rows) < 50 {
		t.Fatalf("found only %d reference rows in %s", len(rows), docPath)
	}
	for _, r := range rows {
		path, cell := r[1], strings.TrimSpace(r[2])
		if strings.HasPrefix(path, "capabilities.") {
			continue // no defaults but burst, which depends on rate
		}
		got, ok := lookup(reflect.ValueOf(d).Elem(), strings.Split(path, "."))
		if !ok {
			t.Errorf("row %s: no such field", path)
			continue
		}
		switch {
		case cell == "—":
			if !got.IsZero() {
				t.Errorf("row %s says no default, but Defaults sets %v", path, got)
			}
		case strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`"):
			want := reflect.New(got.Type())
			if err := setFromDoc(want, strings.Trim(cell, "`")); err != nil {
				t.Errorf("row %s: default %s: %v", path, cell, err)
			} else if !reflect.DeepEqual(want.Elem().Interface(), got.Interface()) {
				t.Errorf("row %s documents default %s, Defaults gives %v", path, cell, got)
			}
		}
	}
}

// setFromDoc parses a TOML literal from the docs into *p.
func setFromDoc(p reflect.Value, lit string) error {
	if u, ok := p.Interface().(encoding.TextUnmarshaler); ok {
		s, err := strconv.Unquote(lit)
		if err != nil {
			return err
		}
		return u.UnmarshalText([]byte(s))
	}
	v := p.Elem()
	switch v.Kind() {
	case reflect.String:
		s, err := strconv.Unquote(lit)
		v.SetString(s)
		return err
	case reflect.Bool:
		b, err := strconv.ParseBool(lit)
		v.SetBool(b)
		return err
	case reflect.Int:
		n, err := strconv.Atoi(lit)
		v.SetInt(int64(n))
		return err
	case reflect.Float64:
		f, err := strconv.ParseFloat(lit, 64)
		v.SetFloat(f)
		return err
	}
	return nil
}

func TestDocs_ExampleValidates(t *testing.T) {
	md, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```toml\n(.*?)```").FindSubmatch(md)
	if block == nil {
		t.Fatalf("%s has no toml example", docPath)
	}
	m, err := Parse(block[1])
	if err != nil {
		t.Fatalf("example does not parse:\n%v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("example does not validate:\n%v", err)
	}
	// The example is complete: it sets every key the structs have.
	keys := map[string]reflect.Type{}
	tomlKeys(reflect.TypeFor[Manifest](), "", keys)
	for path := range keys {
		if !exampleSets(m, path) {
			t.Errorf("the example in %s does not set %s", docPath, path)
		}
	}
}

// exampleSets reports whether the parsed example wrote path, for some name
// in place of "<name>".
func exampleSets(m *Manifest, path string) bool {
	for field := range m.src.written {
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(path), `<name>`, `("[^"]*"|[a-z]+)`) + "$"
		if regexp.MustCompile(re).MatchString(field) {
			return true
		}
	}
	return false
}

// TestDocs_SchemaMatchesStructs walks the schema beside the structs: each
// struct is an object with additionalProperties false whose properties are
// exactly its TOML keys, and each leaf has the matching JSON type.
func TestDocs_SchemaMatchesStructs(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	if root["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", root["$schema"])
	}
	s := schemaWalker{t: t, root: root}
	s.object("", reflect.TypeFor[Manifest](), []map[string]any{root})
}

type schemaWalker struct {
	t    *testing.T
	root map[string]any
}

// resolve follows a local "$ref".
func (s schemaWalker) resolve(node map[string]any) map[string]any {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	def, ok := s.root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	if !ok {
		s.t.Errorf("unresolved $ref %s", ref)
		return map[string]any{}
	}
	return def
}

// object checks struct type t against schemas, any of which may describe it
// (a map's value: the additionalProperties schema and each named one).
func (s schemaWalker) object(path string, t reflect.Type, schemas []map[string]any) {
	keys := tomlFields(t)
	for _, sch := range schemas {
		if sch["additionalProperties"] != false {
			s.t.Errorf("schema for %q: additionalProperties must be false", path)
		}
		props, _ := sch["properties"].(map[string]any)
		for k := range props {
			if _, ok := keys[k]; !ok {
				s.t.Errorf("schema has %s, which is not a key of %s", path+k, t)
			}
		}
	}
	for k, i := range keys {
		var subs []map[string]any
		for _, sch := range schemas {
			props, _ := sch["properties"].(map[string]any)
			if p, ok := props[k].(map[string]any); ok {
				subs = append(subs, p)
			}
		}
		if len(subs) == 0 {
			s.t.Errorf("schema has no property %s", path+k)
			continue
		}
		s.field(path+k, t.Field(i).Type, subs)
	}
}

func (s schemaWalker) field(path string, t reflect.Type, subs []map[string]any) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want := map[reflect.Type]string{
		reflect.TypeFor[Duration](): "#/$defs/duration",
		reflect.TypeFor[Size]():     "#/$defs/size",
		reflect.TypeFor[Rate]():     "#/$defs/rate",
	}
	for _, sub := range subs {
		if ref, ok := want[t]; ok {
			if sub["$ref"] != ref {
				s.t.Errorf("schema for %s: want $ref %s, got %v", path, ref, sub["$ref"])
			}
			continue
		}
		if path == "burst" || strings.HasSuffix(path, ".burst") {
			if sub["$ref"] != "#/$defs/burst" {
				s.t.Errorf("schema for %s: want $ref #/$defs/burst", path)
			}
			continue
		}
		r := s.resolve(sub)
		jsonType := map[reflect.Kind]string{
			reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer",
			reflect.Float64: "number", reflect.Slice: "array", reflect.Struct: "object", reflect.Map: "object",
		}[t.Kind()]
		if r["type"] != jsonType && !(t.Kind() == reflect.String && r["enum"] != nil) {
			s.t.Errorf("schema for %s: type %v, want %s", path, r["type"], jsonType)
		}
		switch t.Kind() {
		case reflect.Struct:
			s.object(path+".", t, []map[string]any{r})
		case reflect.Map:
			var values []map[string]any
			if ap, ok := r["additionalProperties"].(map[string]any); ok {
				values = append(values, s.resolve(ap))
			}
			props, _ := r["properties"].(map[string]any)
			for _, p := range props {
				values = append(values, s.resolve(p.(map[string]any)))
			}
			s.object(path+".<name>.", t.Elem(), values)
		}
	}
}
