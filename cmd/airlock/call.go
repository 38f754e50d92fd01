package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/airlockhq/airlock"
)

func runCall(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 0, "give up after this long (default: the function's manifest timeout)")
	logs := verbosity(fs, e)
	hostFlags(fs, e)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: airlock call [-timeout D] [-v] [-policy FILE] [-state DIR] DIR FUNCTION [INPUT|-]\n\nStarts the plugin in DIR, calls FUNCTION with INPUT (or stdin for -, or nothing), prints the output, stops the plugin.")
		fs.PrintDefaults()
	}
	pos, ok := parse(fs, e, args, 2, 3)
	if !ok {
		return exitUsage
	}
	logs()
	var input []byte
	if len(pos) == 3 {
		if pos[2] == "-" {
			b, err := io.ReadAll(e.stdin)
			if err != nil {
				fmt.Fprintf(e.stderr, "airlock call: read stdin: %v\n", err)
				return exitFailed
			}
			input = b
		} else {
			input = []byte(pos[2])
		}
	}
	h, p, code := loadOne(ctx, e, pos[0])
	if code != exitOK {
		return code
	}
	defer h.Close(context.Background())
	callCtx := ctx
	if *timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	start := time.Now()
	out, err := p.Call(callCtx, pos[1], input)
	if err != nil {
		var ce *airlock.CallError
		if errors.As(err, &ce) {
			fmt.Fprintf(e.stderr, "airlock call: %s failed after %v\n  code:    %s (%d)\n  message: %s\n", pos[1], time.Since(start).Round(time.Millisecond), ce.Code, ce.Code, ce.Error())
		} else {
			fmt.Fprintf(e.stderr, "airlock call: %v\n", err)
		}
		return exitCall
	}
	_, _ = e.stdout.Write(out)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		fmt.Fprintln(e.stdout)
	}
	return exitOK
}
