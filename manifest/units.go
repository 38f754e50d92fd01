package manifest

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// textError is a unit value that does not parse. It names the bad text, says
// what is wrong and gives an example that would parse.
type textError struct {
	kind    string // "duration", "size", "rate"
	text    string
	reason  string
	example string // a valid value, quoted as the author would write it
}

func (e *textError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s (example: %s)", e.kind, e.text, e.reason, e.example)
}

// durationRE is the syntax time.ParseDuration accepts, without a sign.
var durationRE = regexp.MustCompile(`^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// UnmarshalText parses a duration with an explicit unit, such as "250ms",
// "2s" or "1m30s". Negative durations and bare numbers are errors.
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	bad := func(reason, example string) error {
		return &textError{kind: "duration", text: s, reason: reason, example: example}
	}
	switch {
	case s == "":
		return bad("empty", `"30s"`)
	case strings.HasPrefix(s, "-"):
		return bad("must not be negative", strconv.Quote(s[1:]))
	case strings.HasPrefix(s, "+"):
		return bad("no sign allowed", strconv.Quote(s[1:]))
	case isDecimal(s):
		return bad("no unit", strconv.Quote(s+"s"))
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil && durationRE.MatchString(s):
		return bad("too large", `"24h"`) // well-formed, so it overflowed
	case err != nil:
		return bad(`not a number with a unit (ns, us, ms, s, m, h)`, `"250ms"`)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d the way time.Duration prints it ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String returns d as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }

// sizeUnit returns the number of bytes in one unit. The binary units (KiB =
// 1024 bytes) are what Airlock prints; the decimal ones (KB = 1000 bytes) are
// accepted because people write them. No unit means bytes.
func sizeUnit(u string) (int64, bool) {
	switch u {
	case "", "B":
		return 1, true
	case "KB":
		return 1e3, true
	case "MB":
		return 1e6, true
	case "GB":
		return 1e9, true
	case "TB":
		return 1e12, true
	case "KiB":
		return 1 << 10, true
	case "MiB":
		return 1 << 20, true
	case "GiB":
		return 1 << 30, true
	case "TiB":
		return 1 << 40, true
	}
	return 0, false
}

const sizeUnitList = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"

// UnmarshalText parses a size: a whole number of bytes followed by a unit
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), such as "512B", "64KiB" or "2GiB".
// Bare digits are bytes, so the raw text of a TOML integer also parses.
func (s *Size) UnmarshalText(text []byte) error {
	str := string(text)
	bad := func(reason, example string) error {
		return &textError{kind: "size", text: str, reason: reason, example: example}
	}
	if strings.HasPrefix(str, "-") {
		return bad("must not be negative", strconv.Quote(str[1:]))
	}
	end := strings.IndexFunc(str, func(c rune) bool { return (c < '0' || c > '9') && c != '_' && c != '.' })
	if end < 0 {
		end = len(str)
	}
	num, unit := str[:end], str[end:]
	mult, ok := sizeUnit(unit)
	if !ok {
		for _, u := range strings.Split(sizeUnitList, ", ") {
			if strings.EqualFold(u, unit) {
				return bad(fmt.Sprintf("unknown unit %q (units are case-sensitive)", unit), strconv.Quote(num+u))
			}
		}
		return bad("want a whole number and a unit ("+sizeUnitList+")", `"64MiB"`)
	}
	if strings.Contains(num, ".") {
		example := `"1536KiB"`
		if f, err := strconv.ParseFloat(num, 64); err == nil {
			if b := f * float64(mult); b == math.Trunc(b) && b >= 1 && b < 1<<62 {
				example = strconv.Quote(Size(b).String())
			}
		}
		return bad("must be a whole number", example)
	}
	if num == "" || num[0] == '_' || num[len(num)-1] == '_' || strings.Contains(num, "__") {
		return bad("want a whole number and a unit ("+sizeUnitList+")", `"64MiB"`)
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(num, "_", ""), 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return bad("too large", `"1TiB"`)
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText writes s in the largest binary unit that holds it exactly.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String returns s in the largest binary unit that holds it exactly, such as
// "64MiB" or "1500B".
func (s Size) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if m, _ := sizeUnit(u); s != 0 && int64(s)%m == 0 {
			return strconv.FormatInt(int64(s)/m, 10) + u
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// ratePeriod returns the period a rate unit stands for.
func ratePeriod(unit string) (time.Duration, bool) {
	switch unit {
	case "s":
		return time.Second, true
	case "m":
		return time.Minute, true
	case "h":
		return time.Hour, true
	}
	return 0, false
}

// UnmarshalText parses a rate: a non-negative decimal count, a slash and a
// unit of s, m or h, such as "100/s", "10/m", "5/h" or "0.5/s". "0/s" is the
// zero Rate, which means unlimited.
func (r *Rate) UnmarshalText(text []byte) error {
	s := string(text)
	bad := func(reason, example string) error {
		return &textError{kind: "rate", text: s, reason: reason, example: example}
	}
	count, unit, ok := strings.Cut(s, "/")
	per, known := ratePeriod(unit)
	switch {
	case !ok:
		if isDecimal(s) {
			return bad("no unit", strconv.Quote(s+"/s"))
		}
		return bad("want a count, a slash and s, m or h", `"100/s"`)
	case strings.HasPrefix(count, "-"):
		return bad("must not be negative", strconv.Quote(count[1:]+"/"+unit))
	case !isDecimal(count):
		return bad("the count must be a decimal number", `"0.5/s"`)
	case !known:
		return bad(fmt.Sprintf("unknown unit %q (use s, m or h)", unit), strconv.Quote(count+"/s"))
	}
	c, err := strconv.ParseFloat(count, 64)
	if err != nil || math.IsInf(c, 0) {
		return bad("too large", `"1000/s"`)
	}
	if c == 0 {
		*r = Rate{}
		return nil
	}
	*r = Rate{Count: c, Per: per}
	return nil
}

// MarshalText writes r as String does.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// String returns r as "COUNT/UNIT". A period other than a second, minute or
// hour is written as the equivalent per-second rate.
func (r Rate) String() string {
	count, unit := r.Count, "s"
	switch r.Per {
	case 0, time.Second:
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	default:
		count = r.PerSecond()
	}
	return strconv.FormatFloat(count, 'f', -1, 64) + "/" + unit
}

// IsZero reports whether r is the zero Rate, which means unlimited.
func (r Rate) IsZero() bool { return r.Count == 0 }

// PerSecond returns r as events per second. A zero Per counts as one
// second, so Rate{Count: 100} is 100 per second. It returns 0 for the zero
// Rate; check IsZero first, since zero means unlimited.
func (r Rate) PerSecond() float64 {
	if r.Per == 0 {
		return r.Count
	}
	return r.Count / r.Per.Seconds()
}

// isDecimal reports whether s is digits with at most one inner dot.
func isDecimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	return intPart != "" && allDigits(intPart) && (!hasDot || frac != "" && allDigits(frac))
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
