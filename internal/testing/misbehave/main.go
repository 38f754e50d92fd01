// Command misbehave is a plugin that misbehaves on request, for the host's
// tests. Its start-up behaviour is chosen by -mode; its functions each
// misbehave in one way once it serves.
//
// Modes: serve (default), exit-during-handshake, garbage, no-welcome,
// wrong-version, missing-export.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
	"github.com/airlockhq/airlock/sdk/go/plugin"
)

func main() {
	mode := flag.String("mode", "serve", "start-up behaviour")
	flag.Parse()
	// Keep a second descriptor of the host socket so functions can write
	// raw bytes behind the SDK's back.
	raw, err := syscall.Dup(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dup fd 3:", err)
		os.Exit(1)
	}
	switch *mode {
	case "serve":
	case "exit-during-handshake":
		fmt.Fprintln(os.Stderr, "giving up during the handshake on purpose")
		os.Exit(7)
	case "garbage":
		_, _ = syscall.Write(raw, []byte("HTTP/1.1 200 OK\r\n\r\nthis is not a frame"))
		time.Sleep(time.Hour)
	case "no-welcome":
		time.Sleep(time.Hour)
	case "wrong-version":
		readFrame(raw)
		w := wire.Welcome{Version: 9, Versions: wire.VersionRange{Min: 9, Max: 9}, MaxFrame: wire.DefaultMaxFrame, SDK: "misbehave", Functions: []string{"echo"}}
		_, _ = syscall.Write(raw, w.AppendFrame(nil))
		time.Sleep(time.Hour)
	case "deaf":
		// Complete the handshake, then never read the socket again: the
		// host's writes to it fill its buffer and stall.
		readFrame(raw)
		w := wire.Welcome{Version: 1, Versions: wire.Supported, MaxFrame: wire.DefaultMaxFrame, SDK: "misbehave-deaf",
			Functions: []string{"crash", "deadline", "echo", "fail", "flood", "garbage", "hang", "log", "oversized", "panic", "sleep"}}
		_, _ = syscall.Write(raw, w.AppendFrame(nil))
		time.Sleep(time.Hour)
	case "missing-export":
		p := plugin.New("misbehave", "1.0.0")
		p.Handle("echo", echo)
		p.Main()
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}

	p := plugin.New("misbehave", "1.0.0")
	p.Handle("echo", echo)
	// sleep waits the number of milliseconds in its input, or until its
	// context ends, and says which happened.
	p.Handle("sleep", func(ctx context.Context, in []byte) ([]byte, error) {
		ms, _ := strconv.Atoi(string(in))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return []byte("slept"), nil
		case <-ctx.Done():
			slog.InfoContext(ctx, "handler saw its context end", "err", ctx.Err().Error())
			return nil, ctx.Err()
		}
	})
	// deadline reports the time left on the handler's context.
	p.Handle("deadline", func(ctx context.Context, _ []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		return json.Marshal(map[string]any{"has_deadline": ok, "left_ms": time.Until(dl).Milliseconds()})
	})
	// hang never returns and ignores cancellation.
	p.Handle("hang", func(ctx context.Context, _ []byte) ([]byte, error) { select {} })
	p.Handle("panic", func(ctx context.Context, _ []byte) ([]byte, error) { panic("boom on purpose") })
	p.Handle("fail", func(ctx context.Context, in []byte) ([]byte, error) {
		return nil, plugin.Errorf(plugin.CodeBadInput, "refusing %q", in)
	})
	p.Handle("crash", func(ctx context.Context, _ []byte) ([]byte, error) {
		fmt.Fprintln(os.Stderr, "crashing mid-call on purpose")
		os.Exit(3)
		return nil, nil
	})
	p.Handle("garbage", func(ctx context.Context, _ []byte) ([]byte, error) {
		// A length prefix of 2 is shorter than any header: invalid.
		_, _ = syscall.Write(raw, []byte("\x02\x00\x00\x00garbage garbage garbage"))
		time.Sleep(time.Hour)
		return nil, nil
	})
	p.Handle("oversized", func(ctx context.Context, _ []byte) ([]byte, error) {
		_, _ = syscall.Write(raw, wire.AppendHeader(nil, wire.KindResult, 1, 1<<30))
		time.Sleep(time.Hour)
		return nil, nil
	})
	p.Handle("flood", func(ctx context.Context, in []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(in))
		line := strings.Repeat("x", 100)
		for i := range n {
			fmt.Fprintf(os.Stdout, "%d %s\n", i, line)
			fmt.Fprintf(os.Stderr, "%d %s\n", i, line)
			slog.InfoContext(ctx, "log flood", "i", i)
		}
		return []byte("flooded"), nil
	})
	p.Handle("log", func(ctx context.Context, in []byte) ([]byte, error) {
		slog.WarnContext(ctx, "plugin says", "text", string(in), slog.Group("req", "size", len(in)))
		return nil, nil
	})
	// hostcall makes the host call {"function": F, "payload": P} and
	// answers with its result, or its error code and message.
	p.Handle("hostcall", func(ctx context.Context, in []byte) ([]byte, error) {
		var req struct {
			Function string          `json:"function"`
			Payload  json.RawMessage `json:"payload"`
			Caveat   *plugin.Caveat  `json:"caveat"`
		}
		if err := json.Unmarshal(in, &req); err != nil {
			return nil, plugin.Errorf(plugin.CodeBadInput, "%v", err)
		}
		if req.Caveat != nil {
			if err := p.Attenuate(capabilityOf(req.Function), *req.Caveat); err != nil {
				return nil, err
			}
		}
		out, err := plugin.HostCall(ctx, req.Function, req.Payload)
		if err != nil {
			return json.Marshal(map[string]any{"code": plugin.CodeOf(err).String(), "error": err.Error()})
		}
		return out, nil
	})
	// forge sends a host call with a made-up token behind the SDK's back.
	p.Handle("forge", func(ctx context.Context, in []byte) ([]byte, error) {
		frame := wire.HostCall{Function: "clock.now", Token: append([]byte("ALCT\x01"), in...), Payload: []byte("{}")}.AppendFrame(nil, 1<<62)
		_, err := syscall.Write(raw, frame)
		return nil, err
	})
	slog.SetDefault(p.Logger())
	p.Main()
}

func echo(_ context.Context, in []byte) ([]byte, error) { return in, nil }

// capabilityOf returns the capability part of a host function name.
func capabilityOf(function string) string {
	if i := strings.LastIndexByte(function, '.'); i > 0 {
		return function[:i]
	}
	return function
}

// readFrame reads and discards one frame from fd.
func readFrame(fd int) {
	hdr := make([]byte, wire.HeaderSize)
	if _, err := readFull(fd, hdr); err != nil {
		return
	}
	h, err := wire.ParseHeader(hdr, wire.HandshakeMaxFrame)
	if err != nil {
		return
	}
	_, _ = readFull(fd, make([]byte, h.BodyLen))
}

func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Read(fd, b[n:])
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, errors.New("eof")
		}
		n += m
	}
	return n, nil
}
