package manifest_test

import (
	"errors"
	"fmt"

	"github.com/airlockhq/airlock/manifest"
)

func ExampleParse() {
	m, err := manifest.Parse([]byte(`
name = "thumbnailer"
version = "1.0.0"

[entry]
program = "bin/thumbnailer"
sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

[functions.resize]
timeout = "5s"
max_input = "16MiB"

[functions.probe]
idempotent = true
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	d := m.Defaults()
	for _, name := range d.FunctionNames() {
		f := d.Functions[name]
		fmt.Printf("%s: timeout %s, max input %s, idempotent %v\n", name, f.Timeout, f.MaxInput, f.Idempotent)
	}
	fmt.Println("memory:", d.Limits.Memory, "restart:", d.Restart.Policy)
	// Output:
	// probe: timeout 30s, max input 1MiB, idempotent true
	// resize: timeout 5s, max input 16MiB, idempotent false
	// memory: 256MiB restart: on-failure
}

// Every problem is reported at once, each with its line, column and fix.
func ExampleError() {
	_, err := manifest.Parse([]byte(`
name = "thumbnailer"
verison = "1.0.0"

[functions.resize]
timeout = 5
`))
	var merr *manifest.Error
	if errors.As(err, &merr) {
		for _, p := range merr.Problems {
			fmt.Printf("line %d: %s: %s (fix: %s)\n", p.Line, p.Field, p.Message, p.Fix)
		}
	}
	// Output:
	// line 3: verison: unknown key (fix: did you mean "version"?)
	// line 6: functions.resize.timeout: expected a duration string, got integer 5 (fix: write timeout = "5s")
}
