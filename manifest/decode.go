package manifest

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// decoder copies go-toml's generic tree (map[string]any) into the Manifest
// structs by their toml tags. go-toml's own struct decoding stops at the
// first type error; walking the tree ourselves lets Parse report every
// unknown key and every wrong type in one pass.
type decoder struct {
	src      *source
	problems []Problem
}

func (d *decoder) problem(field, fix, format string, args ...any) {
	p := d.src.at(field)
	d.problems = append(d.problems, Problem{
		Field: field, Line: p.line, Column: p.column,
		Message: fmt.Sprintf(format, args...), Fix: fix,
	})
}

// table decodes a TOML table into the struct v.
func (d *decoder) table(field string, keys []string, tbl map[string]any, v reflect.Value) {
	fields := tomlFields(v.Type())
	for _, k := range slices.Sorted(maps.Keys(tbl)) {
		f := child(field, k)
		i, ok := fields[k]
		if !ok {
			d.problem(f, unknownKeyFix(k, fields), "unknown key")
			continue
		}
		d.value(f, append(slices.Clip(keys), k), tbl[k], v.Field(i))
	}
}

// tomlFields maps each TOML key of struct type t to its field index. The
// map is built once per type and shared: callers must not modify it.
func tomlFields(t reflect.Type) map[string]int {
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]int)
	}
	fields := map[string]int{}
	for i := range t.NumField() {
		if name := tomlKey(t.Field(i)); name != "" {
			fields[name] = i
		}
	}
	fieldsByType.Store(t, fields)
	return fields
}

// fieldsByType caches tomlFields: the manifest's handful of struct types.
var fieldsByType sync.Map

// tomlKey returns the TOML key of a struct field, or "" if it has none.
func tomlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if !f.IsExported() || name == "-" || name == "" {
		return ""
	}
	return name
}

// value decodes one TOML value into v, reporting a problem instead when the
// value does not fit.
func (d *decoder) value(field string, keys []string, raw any, v reflect.Value) {
	d.src.written[field] = true
	t := v.Type()
	defer func() {
		if isDefaultable(t) && v.IsZero() && !d.failed(field) {
			d.src.zeros = append(d.src.zeros, zeroKey{field: field, keys: keys})
		}
	}()
	if n, ok := raw.(int64); ok && t == reflect.TypeFor[Size]() {
		if n < 0 {
			d.problem(field, fmt.Sprintf("write %s = %q", leaf(keys), Size(-n).String()), "size must not be negative, got %d", n)
			return
		}
		v.SetInt(n)
		return
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		s, ok := raw.(string)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			var te *textError
			if errors.As(err, &te) {
				d.problem(field, fmt.Sprintf("write %s = %s", leaf(keys), te.example), "invalid %s %q: %s", te.kind, te.text, te.reason)
			} else {
				d.problem(field, "", "%v", err)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		if v.OverflowInt(n) {
			d.problem(field, "use a smaller number", "integer %d is too large", n)
			return
		}
		v.SetInt(n)
	case reflect.Float64:
		switch x := raw.(type) {
		case float64:
			v.SetFloat(x)
		case int64:
			v.SetFloat(float64(x))
		default:
			d.mismatch(field, keys, raw, t)
		}
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		s := reflect.MakeSlice(t, len(arr), len(arr))
		for i, x := range arr {
			d.value(elem(field, i), keys, x, s.Index(i))
		}
		v.Set(s)
	case reflect.Struct:
		tbl, ok := raw.(map[string]any)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		d.table(field, keys, tbl, v)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.value(field, keys, raw, p.Elem())
		v.Set(p)
	case reflect.Map:
		tbl, ok := raw.(map[string]any)
		if !ok {
			d.mismatch(field, keys, raw, t)
			return
		}
		m := reflect.MakeMapWithSize(t, len(tbl))
		for _, k := range slices.Sorted(maps.Keys(tbl)) {
			e := reflect.New(t.Elem()).Elem()
			d.value(child(field, k), append(slices.Clip(keys), k), tbl[k], e)
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
		v.Set(m)
	default:
		// Every field type of Manifest is handled above; a new one must be too.
		d.problem(field, "", "internal error: no decoder for %s", t)
	}
}

// failed reports whether field already has a problem.
func (d *decoder) failed(field string) bool {
	return slices.ContainsFunc(d.problems, func(p Problem) bool { return p.Field == field })
}

// isDefaultable reports whether a zero value of t means "use the default",
// so that writing zero in the file is a mistake worth reporting.
func isDefaultable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
		return true
	case reflect.String:
		return t.PkgPath() != "" // Tier, RestartPolicy; not plain strings
	}
	return t == reflect.TypeFor[Rate]()
}

// mismatch reports a value of the wrong TOML type.
func (d *decoder) mismatch(field string, keys []string, raw any, t reflect.Type) {
	want, example := describeType(t)
	switch raw.(type) {
	case int64, float64, bool:
		switch {
		case t == reflect.TypeFor[Duration]():
			example = strconv.Quote(fmt.Sprint(raw, "s"))
		case t == reflect.TypeFor[Rate]():
			example = strconv.Quote(fmt.Sprint(raw, "/s"))
		case t.Kind() == reflect.String:
			example = strconv.Quote(fmt.Sprint(raw))
		}
	}
	fix := fmt.Sprintf("write %s = %s", leaf(keys), example)
	switch {
	case strings.HasSuffix(field, "]"):
		fix = "write the element as " + example
	case t.Kind() == reflect.Struct && t != reflect.TypeFor[Rate]() || t.Kind() == reflect.Map || t.Kind() == reflect.Pointer:
		fix = fmt.Sprintf("write it as a table: [%s]", field)
	}
	d.problem(field, fix, "expected %s, got %s", want, describeValue(raw))
}

// describeType names what a field of type t accepts, with an example value.
func describeType(t reflect.Type) (want, example string) {
	switch t {
	case reflect.TypeFor[Duration]():
		return "a duration string", `"30s"`
	case reflect.TypeFor[Size]():
		return "a size string or an integer of bytes", `"64MiB"`
	case reflect.TypeFor[Rate]():
		return "a rate string", `"100/s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string", `"..."`
	case reflect.Bool:
		return "true or false", "true"
	case reflect.Int:
		return "an integer", "16"
	case reflect.Float64:
		return "a number", "1.5"
	case reflect.Slice:
		return "an array of strings", `["..."]`
	}
	return "a table", "{}"
}

// describeValue names a decoded TOML value for an error message.
func describeValue(raw any) string {
	switch x := raw.(type) {
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return "string " + strconv.Quote(x)
	case int64:
		return "integer " + strconv.FormatInt(x, 10)
	case float64:
		return "float " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

func leaf(keys []string) string {
	if len(keys) == 0 {
		return "value"
	}
	k := keys[len(keys)-1]
	if !isBareKey(k) {
		k = strconv.Quote(k)
	}
	return k
}

// unknownKeyFix suggests the nearest valid key, or lists them all.
func unknownKeyFix(key string, fields map[string]int) string {
	names := slices.Sorted(maps.Keys(fields))
	best, bestDist := "", 3
	for _, n := range names {
		if dist := editDistance(strings.ToLower(key), n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "remove it; valid keys here: " + strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
