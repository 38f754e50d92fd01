// Command hostile is a plugin that attacks its host, for the host-level
// hostile suite (hostile_test.go at the repository root). The sandbox's own
// tests run the attack catalogue (internal/testing/attack) in a bare victim
// program; this program runs the same catalogue from inside a real,
// protocol-speaking plugin, so the tests can check what the host does about
// each attack: the error its callers get, what Status records, that its
// other plugins keep answering and that nothing survives.
//
// The attacks live in package attack; this program is glue.
//
// # Functions
//
//   - attack {"mode": M, "args": [...]}: runs attack M inside the call and
//     answers its attack.Result as JSON. Unknown modes and bad arguments
//     fail the call with bad_input.
//   - start {"mode": M, "args": [...]}: starts attack M in the background
//     and answers at once, so the attack runs outside any call. Its result,
//     if it ends, is logged to the host ("background attack ended").
//   - hold: waits until its context ends (a call kept pending on purpose).
//   - exit N: exits the process with status N (default 3).
//
// # Flags
//
// -attack=M starts attack M in the background at start-up, with the
// arguments of -args (comma-separated), before the handshake: the host must
// bring the plugin up while it attacks.
//
// Run as "hostile MODE [ARGS...]" it runs one attack and prints its Result
// as a line of JSON, as the victim program does: the setuid-exec attack
// runs a setuid copy of this binary that way.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock/internal/testing/attack"
	"github.com/airlockhq/airlock/sdk/go/plugin"
)

// request names an attack and its arguments.
type request struct {
	Mode string   `json:"mode"`
	Args []string `json:"args"`
}

func main() {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		os.Exit(runOnce(os.Args[1], os.Args[2:]))
	}
	mode := flag.String("attack", "", "an attack to start in the background at start-up")
	args := flag.String("args", "", "the start-up attack's arguments, comma-separated")
	flag.Parse()

	p := plugin.New("hostile", "1.0.0")
	plugin.HandleJSON(p, "attack", func(ctx context.Context, req request) (attack.Result, error) {
		res, err := attack.Run(req.Mode, req.Args)
		if err != nil {
			return attack.Result{}, plugin.Errorf(plugin.CodeBadInput, "%v", err)
		}
		return res, nil
	})
	plugin.HandleJSON(p, "start", func(ctx context.Context, req request) (string, error) {
		if !knownMode(req.Mode) {
			return "", plugin.Errorf(plugin.CodeBadInput, "unknown attack mode %q (known: %v)", req.Mode, attack.Modes())
		}
		go background(p, req)
		return "started " + req.Mode, nil
	})
	p.Handle("hold", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	p.Handle("exit", func(ctx context.Context, in []byte) ([]byte, error) {
		code, err := strconv.Atoi(string(in))
		if err != nil {
			code = 3
		}
		fmt.Fprintf(os.Stderr, "hostile: exiting with status %d on request\n", code)
		os.Exit(code)
		return nil, nil
	})

	if *mode != "" {
		if !knownMode(*mode) {
			fmt.Fprintf(os.Stderr, "hostile: unknown -attack %q (known: %v)\n", *mode, attack.Modes())
			os.Exit(2)
		}
		var list []string
		if *args != "" {
			list = strings.Split(*args, ",")
		}
		go background(p, request{Mode: *mode, Args: list})
	}
	p.Main()
}

// background runs an attack outside any call and logs how it ended.
func background(p *plugin.Plugin, req request) {
	res, err := attack.Run(req.Mode, req.Args)
	if err != nil {
		p.Logger().Error("background attack failed", "mode", req.Mode, "err", err.Error())
		return
	}
	b, _ := json.Marshal(res)
	p.Logger().Info("background attack ended", "mode", req.Mode, "result", string(b))
}

func knownMode(mode string) bool { return slices.Contains(attack.Modes(), mode) }

// runOnce is the victim's command line: one attack, its Result on stdout.
func runOnce(mode string, args []string) int {
	res, err := attack.Run(mode, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostile: %v\n", err)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "hostile: write result: %v\n", err)
		return 1
	}
	return 0
}
