// Package plugin is the Go SDK for writing Airlock plugins.
//
// A plugin registers handlers and serves them:
//
//	func main() {
//		p := plugin.New("greeter", "1.0.0")
//		plugin.HandleJSON(p, "greet", func(ctx context.Context, in Request) (Response, error) {
//			return Response{Text: "hello, " + in.Name}, nil
//		})
//		p.Main()
//	}
//
// Handlers receive a context that carries the caller's deadline and is
// cancelled when the caller gives up, the plugin shuts down, or the deadline
// passes. A handler that panics fails its own call with a panic error; the
// plugin keeps serving. Records logged through Logger (or slog.*Context with
// the handler's ctx) travel to the host's log, tagged with the call.
//
// # Concurrency
//
// Calls run concurrently, on a pool of goroutines that grows to the peak
// of calls in flight; one always reads the connection, so heartbeats,
// cancellation and shutdown are seen while handlers run. Calls that arrive
// in a burst run one after another on the reading goroutine and their
// replies go out in one write; a watchdog hands reading on from a call
// that runs over 100–200 µs (and a handler's HostCall does before it
// waits), so a handler that blocks delays the calls behind it in its
// burst by at most that.
//
// # Dependencies
//
// The SDK imports only the standard library (and Airlock's own protocol
// packages, which do the same), so a plugin's module gains no dependency.
//
// # Memory
//
// Serve sets GOGC to 400 (Go's default is 100) and, when the host states
// the plugin's memory limit, a soft memory limit of 90% of it: payloads
// pass through short-lived buffers, and with Go's defaults a plugin
// receiving 1 MiB inputs collected every few calls. The settings yield to
// GOGC or GOMEMLIMIT in the environment and to debug.SetGCPercent or
// debug.SetMemoryLimit called before Serve.
//
// # Tiers
//
// Handlers see only this package's API, never the transport, so the same
// handler code can be built for another tier by changing the build target.
// The process tier (a child process with the host's socket as fd 3) is the
// one this version serves; see transport_*.go.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/token"
	"github.com/airlockhq/airlock/internal/wire"
)

// SDKVersion is this SDK's version, reported to the host in negotiation.
const SDKVersion = "0.1.0"

// Handler serves one function: it receives the call's input bytes and
// returns its output bytes. The input belongs to the handler; the output
// must not be modified after the handler returns.
type Handler func(ctx context.Context, input []byte) ([]byte, error)

// Plugin is a set of handlers and the connection that serves them. Register
// every handler before calling Serve or Main.
type Plugin struct {
	name, version string
	handlers      map[string]Handler
	logLevel      slog.Leveler

	mu      sync.Mutex
	conn    *rpc.Conn
	tokens  map[string][]byte
	caveats map[string][]Caveat // re-applied to every GRANT

	logger *slog.Logger
}

// New returns a plugin called name (its manifest name) at version.
func New(name, version string) *Plugin {
	p := &Plugin{name: name, version: version, handlers: map[string]Handler{}, logLevel: slog.LevelInfo}
	p.logger = slog.New(&logHandler{p: p})
	return p
}

// validName reports whether name is a valid function name: 1 to 64 of
// lowercase letters, digits, '_', '.' and '-', starting with a letter. (A
// regexp would cost every plugin a fifth of a millisecond at start-up.)
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Handle registers h as function. It panics if function is not a valid name
// (lowercase letters, digits, '_', '.', '-', starting with a letter) or is
// registered twice: both are mistakes in the plugin's own code, found the
// first time it runs.
func (p *Plugin) Handle(function string, h Handler) {
	if !validName(function) {
		panic(fmt.Sprintf("plugin: invalid function name %q: use lowercase letters, digits, '_', '.', '-', starting with a letter", function))
	}
	if _, dup := p.handlers[function]; dup {
		panic(fmt.Sprintf("plugin: function %q registered twice", function))
	}
	if h == nil {
		panic(fmt.Sprintf("plugin: nil handler for %q", function))
	}
	p.handlers[function] = h
}

// HandleJSON registers a typed handler: the input is decoded from JSON into
// In (a decode failure answers bad_input without calling fn) and the
// result is encoded as JSON.
func HandleJSON[In, Out any](p *Plugin, function string, fn func(ctx context.Context, in In) (Out, error)) {
	p.Handle(function, func(ctx context.Context, input []byte) ([]byte, error) {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, Errorf(CodeBadInput, "decode %s input as JSON: %v", function, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, Errorf(CodeInternal, "encode %s output as JSON: %v", function, err)
		}
		return b, nil
	})
}

// SetLogLevel sets the lowest level Logger sends to the host (default info).
func (p *Plugin) SetLogLevel(l slog.Leveler) { p.logLevel = l }

// Logger returns a logger whose records go to the host's log. Inside a
// handler, prefer the *Context methods with the handler's ctx so the record
// names its call.
func (p *Plugin) Logger() *slog.Logger { return p.logger }

// Functions returns the registered function names, sorted.
func (p *Plugin) Functions() []string {
	names := make([]string, 0, len(p.handlers))
	for n := range p.handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Main serves the plugin and exits the process: status 0 after a clean
// shutdown, non-zero (with the reason on stderr) otherwise. Run by hand,
// outside a host, it explains how to run it instead.
func (p *Plugin) Main() {
	err := p.Serve()
	if err == nil {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", p.name, err)
	var ee *exitCodeError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

// Exit statuses Main uses.
const (
	exitNotHosted       = 2 // run by hand, not by a host
	exitVersionMismatch = 3
	exitProtocol        = 4
)

type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// ErrNotHosted is returned by Serve when the process was not started by an
// Airlock host.
var ErrNotHosted = errors.New("not started by an Airlock host: run it with `airlock call DIR FUNCTION [INPUT]` or load it into a host")

// Code is an error code from the protocol's closed set.
type Code = wire.Code

// The codes a handler may return with Errorf. Others (deadline_exceeded,
// cancelled, panic) are chosen by the SDK.
const (
	CodeBadInput         = wire.CodeBadInput
	CodeInternal         = wire.CodeInternal
	CodeUnavailable      = wire.CodeUnavailable
	CodeTooLarge         = wire.CodeTooLarge
	CodePermissionDenied = wire.CodePermissionDenied
	CodeOverloaded       = wire.CodeOverloaded
	CodeUnknownFunction  = wire.CodeUnknownFunction
)

// Errorf returns an error that fails the call with code and a formatted
// message. Handlers return plain errors as code internal.
func Errorf(code Code, format string, args ...any) error {
	return rpc.Errorf(code, format, args...)
}

// callInfo is what a handler's context carries.
type callInfo struct {
	id uint64
	p  *Plugin
}

type callKey struct{}

func (p *Plugin) dispatch(ctx context.Context, req *rpc.Request) ([]byte, error) {
	h, ok := p.handlers[req.Function]
	if !ok {
		return nil, rpc.Errorf(wire.CodeUnknownFunction, "unknown function %q; %s exports: %s",
			req.Function, p.name, strings.Join(p.Functions(), ", "))
	}
	return h(context.WithValue(ctx, callKey{}, callInfo{id: req.ID, p: p}), req.Payload)
}

// HostCall calls a host capability from inside a handler, e.g.
// HostCall(ctx, "kv.get", input). The call presents the token the host
// granted for the capability, and inherits ctx's deadline and
// cancellation. It fails with permission_denied when the capability was not
// granted.
func HostCall(ctx context.Context, function string, input []byte) ([]byte, error) {
	ci, ok := ctx.Value(callKey{}).(callInfo)
	if !ok {
		return nil, errors.New("plugin.HostCall: ctx is not a handler's context; use Plugin.HostCall outside handlers")
	}
	return ci.p.HostCall(ctx, function, input)
}

// HostCall calls a host capability with ctx's deadline and cancellation.
func (p *Plugin) HostCall(ctx context.Context, function string, input []byte) ([]byte, error) {
	p.mu.Lock()
	conn, token := p.conn, p.tokenFor(function)
	p.mu.Unlock()
	if conn == nil {
		return nil, errors.New("plugin.HostCall: the plugin is not connected to a host")
	}
	return conn.Call(ctx, function, 0, token, input)
}

// tokenFor finds the token of the capability function belongs to: the
// longest granted capability name that is a dotted prefix of function.
func (p *Plugin) tokenFor(function string) []byte {
	for name := function; ; {
		if t, ok := p.tokens[name]; ok {
			return t
		}
		i := strings.LastIndexByte(name, '.')
		if i < 0 {
			return nil
		}
		name = name[:i]
	}
}

func (p *Plugin) setTokens(body []byte) {
	g, err := wire.DecodeGrant(body)
	if err != nil {
		return // a malformed grant grants nothing; host calls will be refused
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tokens := make(map[string][]byte, len(g.Tokens))
	for _, t := range g.Tokens {
		tok := append([]byte(nil), t.Token...)
		for _, c := range p.caveats[t.Capability] {
			narrowed, err := token.Attenuate(tok, c)
			if err != nil {
				tok = nil // fail closed: never present more than the plugin asked to keep
				break
			}
			tok = narrowed
		}
		tokens[t.Capability] = tok
	}
	p.tokens = tokens
}

// Caveat narrows a capability token: each field that is set restricts what
// the token allows (a list keeps only what both allow, a number the
// smaller). See docs/capabilities.md.
type Caveat = token.Caveat

// Attenuate narrows the plugin's token for capability: from now on its host
// calls for that capability present a token that allows at most what c
// allows, and never more than before. The narrowing is kept when the host
// hands out fresh tokens. Use it to give up powers the plugin no longer
// needs, e.g. after start-up. It needs no key and cannot widen anything.
func (p *Plugin) Attenuate(capability string, c Caveat) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok, ok := p.tokens[capability]
	if !ok || tok == nil {
		return fmt.Errorf("plugin.Attenuate: the host granted no %q token", capability)
	}
	narrowed, err := token.Attenuate(tok, c)
	if err != nil {
		return fmt.Errorf("plugin.Attenuate: %w", err)
	}
	p.tokens[capability] = narrowed
	if p.caveats == nil {
		p.caveats = map[string][]Caveat{}
	}
	p.caveats[capability] = append(p.caveats[capability], c)
	return nil
}
