package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/airlockhq/airlock/manifest"
)

// FormatVersion is the policy file format this package reads. A file may say
// `version = 1`; a file that says another version is refused.
const FormatVersion = 1

// ParseError is a problem at a place in a policy file.
type ParseError struct {
	File   string // file name, or "" when parsing bytes
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Msg    string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("policy")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, parses and validates the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a policy from TOML and validates it. Unknown keys and values
// of the wrong type are errors that carry their line and column; several
// problems are joined into one error (errors.As finds the first
// *ParseError, or the *ValidationError).
func Parse(data []byte) (*Policy, error) {
	p, err := parse(data, "")
	if err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

type rawPolicy struct {
	Version int                  `toml:"version"`
	Plugins map[string]rawPlugin `toml:"plugins"`
}

type rawPlugin struct {
	Capabilities map[string]rawRule `toml:"capabilities"`
	Config       map[string]any     `toml:"config"`
}

type rawRule struct {
	Deny         string            `toml:"deny"`
	Rate         rateText          `toml:"rate"`
	Burst        int               `toml:"burst"`
	Budget       sizeText          `toml:"budget"`
	Hosts        []string          `toml:"hosts"`
	Methods      []string          `toml:"methods"`
	AllowPrivate bool              `toml:"allow_private"`
	MaxResponse  sizeText          `toml:"max_response"`
	Timeout      durationText      `toml:"timeout"`
	Roots        map[string]string `toml:"roots"`
	MaxFile      sizeText          `toml:"max_file"`
	Quota        sizeText          `toml:"quota"`
	Scope        []string          `toml:"scope"`
}

func parse(data []byte, file string) (*Policy, error) {
	var raw rawPolicy
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(err, file)
	}
	if raw.Version != 0 && raw.Version != FormatVersion {
		return nil, &ParseError{File: file, Msg: fmt.Sprintf("version = %d is not supported; this Airlock reads policy format version %d", raw.Version, FormatVersion)}
	}
	p := &Policy{Plugins: make(map[string]Plugin, len(raw.Plugins))}
	var errs []error
	for name, rp := range raw.Plugins {
		pl := Plugin{}
		if rp.Capabilities != nil {
			pl.Capabilities = make(map[string]Rule, len(rp.Capabilities))
			for cname, rr := range rp.Capabilities {
				pl.Capabilities[cname] = Rule{
					Deny: rr.Deny, Rate: manifest.Rate(rr.Rate), Burst: rr.Burst, Budget: manifest.Size(rr.Budget),
					Hosts: rr.Hosts, Methods: rr.Methods, AllowPrivate: rr.AllowPrivate,
					MaxResponse: manifest.Size(rr.MaxResponse), Timeout: manifest.Duration(rr.Timeout),
					Roots: rr.Roots, MaxFile: manifest.Size(rr.MaxFile), Quota: manifest.Size(rr.Quota),
					Scope: rr.Scope,
				}
			}
		}
		if rp.Config != nil {
			pl.Config = make(map[string]string, len(rp.Config))
			for k, v := range rp.Config {
				s, err := configString(v)
				if err != nil {
					errs = append(errs, &ParseError{File: file, Msg: fmt.Sprintf("plugins.%s.config.%s: %v", tomlKey(name), tomlKey(k), err)})
					continue
				}
				pl.Config[k] = s
			}
		}
		p.Plugins[name] = pl
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// configString renders a scalar TOML value as the string the plugin reads.
func configString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case fmt.Stringer: // TOML local dates and times
		return v.String(), nil
	case []any, map[string]any:
		return "", errors.New("config values are strings, numbers, booleans or dates, not arrays or tables; write the value as a string (e.g. a JSON text) and decode it in the plugin")
	default:
		return "", fmt.Errorf("config values are strings, numbers, booleans or dates, not %T; write the value as a string (e.g. a JSON text) and decode it in the plugin", v)
	}
}

// decodeError turns go-toml's errors into ParseErrors with positions.
func decodeError(err error, file string) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, col := de.Position()
			key := strings.Join(de.Key(), ".")
			errs = append(errs, &ParseError{File: file, Line: line, Column: col, Msg: unknownKeyMsg(de.Key(), key)})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := friendlyDecodeMsg(de.Error())
		if k := de.Key(); len(k) > 0 {
			msg = strings.Join(k, ".") + ": " + msg
		}
		return &ParseError{File: file, Line: line, Column: col, Msg: msg}
	}
	return &ParseError{File: file, Msg: err.Error()}
}

var mismatchRE = regexp.MustCompile(`cannot decode TOML (\w+) into .* of type (\S+)`)

var goTypeWords = map[string]string{
	"[]string":                    "an array of strings",
	"string":                      "a string",
	"int":                         "an integer",
	"bool":                        "true or false",
	"map[string]string":           "a table of strings",
	"policy.sizeText":             "a size such as \"10MiB\"",
	"policy.rateText":             "a rate such as \"100/s\"",
	"policy.durationText":         "a duration such as \"5s\"",
	"map[string]policy.rawRule":   "a table of capability rules",
	"map[string]policy.rawPlugin": "a table of plugin sections",
	"policy.rawRule":              "a table",
	"policy.rawPlugin":            "a table",
}

// friendlyDecodeMsg rewrites go-toml's messages in the policy's terms.
func friendlyDecodeMsg(msg string) string {
	msg = strings.TrimPrefix(msg, "toml: ")
	if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		want := goTypeWords[m[2]]
		if want == "" {
			want = m[2]
		}
		return fmt.Sprintf("expected %s, found a TOML %s", want, m[1])
	}
	return msg
}

func unknownKeyMsg(path []string, key string) string {
	switch {
	case len(path) == 1:
		return fmt.Sprintf("unknown key %q; the top level holds version and [plugins.NAME] tables", key)
	case len(path) == 3 && path[0] == "plugins":
		return fmt.Sprintf("unknown key %q; a plugin section holds [plugins.NAME.capabilities.CAP] tables and a [plugins.NAME.config] table", key)
	case len(path) >= 5 && path[0] == "plugins" && path[2] == "capabilities":
		return fmt.Sprintf("unknown key %q; the %s rule takes %s", key, path[3], strings.Join(fieldsFor(path[3]), ", "))
	default:
		return fmt.Sprintf("unknown key %q", key)
	}
}

func sortErrors(errs []error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

func tomlKey(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// sizeText decodes a size written "10MiB" or as an integer of bytes.
type sizeText int64

func (s *sizeText) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = sizeText(v)
	return nil
}

// rateText decodes a rate written "100/s".
type rateText manifest.Rate

func (r *rateText) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = rateText(v)
	return nil
}

// durationText decodes a duration written "2s".
type durationText time.Duration

func (d *durationText) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: write a number with a unit, e.g. \"500ms\" or \"5s\"", b)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q must be positive", b)
	}
	*d = durationText(v)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mul    int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1},
}

// ParseSize reads a byte count written with a binary unit ("512B", "64KiB",
// "10MiB", "2GiB", "1TiB") or as plain digits.
func ParseSize(s string) (manifest.Size, error) {
	num, mul := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mul = strings.TrimSuffix(s, u.suffix), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("size %q: write a whole number with a unit B, KiB, MiB, GiB or TiB, e.g. \"10MiB\"", s)
	}
	if n > math.MaxInt64/mul {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return manifest.Size(n * mul), nil
}

// ParseRate reads a rate written "COUNT/UNIT" with UNIT s, m or h, e.g.
// "100/s" or "10/m".
func ParseRate(s string) (manifest.Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	bad := fmt.Errorf("rate %q: write a count per unit, e.g. \"100/s\", \"10/m\" or \"5/h\"", s)
	if !ok {
		return manifest.Rate{}, bad
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return manifest.Rate{}, bad
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return manifest.Rate{}, bad
	}
	return manifest.Rate{Count: n, Per: per}, nil
}
