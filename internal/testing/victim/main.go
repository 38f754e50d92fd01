// Command victim runs one attack from internal/testing/attack and prints
// its Result as one line of JSON on stdout. The sandbox tests start it
// inside a sandbox and check that each attack failed the expected way.
//
// Usage:
//
//	victim [--stay] <mode> [args...]
//
// With --stay it keeps running after printing the result, so a test can
// look at what the attack left behind while the plugin is still alive.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/airlockhq/airlock/internal/testing/attack"
)

func main() {
	args := os.Args[1:]
	stay := len(args) > 0 && args[0] == "--stay"
	if stay {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "usage: victim [--stay] <mode> [args...]\nmodes: %v\n", attack.Modes())
		os.Exit(2)
	}
	res, err := attack.Run(args[0], args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "victim: %v\n", err)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "victim: write result: %v\n", err)
		os.Exit(1)
	}
	for stay {
		time.Sleep(time.Hour)
	}
}
