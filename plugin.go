package airlock

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/airlockhq/airlock/internal/sandbox"
	"github.com/airlockhq/airlock/internal/supervisor"
	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

// Plugin is a loaded plugin. Its methods are safe for concurrent use.
//
// # Lifecycle
//
// A plugin passes through numbered stages, each bounded by a limit from its
// manifest, and each undoing what it started if it fails:
//
//  1. init: the entry program's sha256 is verified and the process started
//     with the host's end of a private socketpair as fd 3, an explicit
//     minimal environment, and its stdout/stderr captured into the log
//     (limits.startup_timeout).
//  2. negotiate: HELLO/WELCOME pick the highest common protocol version;
//     the plugin must export every function the manifest declares
//     (limits.negotiate_timeout).
//  3. activate: the plugin receives its capability tokens.
//  4. operate: calls flow, up to limits.max_concurrency at once; a watchdog
//     pings every limits.heartbeat_interval and kills a plugin that leaves a
//     ping unanswered for limits.heartbeat_timeout, or that keeps running a
//     cancelled call past limits.cancel_grace.
//  5. drain (Close): new calls are refused with ErrClosed, calls in flight
//     run until Close's ctx is done, then SHUTDOWN, SIGTERM and SIGKILL of
//     the whole process tree, within limits.shutdown_timeout.
//  6. stopped, or failed when restarts are spent.
//
// When the process dies during operate, every call in flight fails at once
// with a *CallError wrapping an *ExitError (exit status or signal, last
// stderr lines), and the restart policy decides: restart with exponential
// backoff and jitter, calls arriving meanwhile waiting for the new instance
// up to their deadline. Status shows the state and counters at any time.
type Plugin struct {
	host *Host
	name string
	sup  *supervisor.Supervisor

	mu       sync.Mutex
	decision policy.Decision  // the latest activation's capability decision
	sandbox  *sandbox.Sandbox // the latest instance's
	// tasksRefused sums the refused tasks of the instances before the
	// latest, so that Status counts since load, as its other counters do.
	tasksRefused int64
}

func (p *Plugin) setSandbox(sb *sandbox.Sandbox) {
	p.mu.Lock()
	if p.sandbox != nil {
		// The previous instance has exited and its sandbox is closed:
		// these are its final counts.
		p.tasksRefused += p.sandbox.Events().PidsMax
	}
	p.sandbox = sb
	p.mu.Unlock()
}

func (p *Plugin) setDecision(d policy.Decision) {
	p.mu.Lock()
	p.decision = d
	p.mu.Unlock()
}

// Name returns the plugin's manifest name.
func (p *Plugin) Name() string { return p.name }

// Manifest returns the manifest the plugin runs under, defaults filled in.
// The caller must not modify it.
func (p *Plugin) Manifest() *manifest.Manifest { return p.sup.Manifest() }

// Call calls function with input and returns its output.
//
// The call's deadline is the earlier of ctx's and the function's manifest
// timeout; the plugin's handler sees it, and sees cancellation when ctx is
// cancelled. While limits.max_concurrency calls are in flight, Call waits
// for a slot until its deadline (then ErrOverloaded). While the plugin
// restarts, Call waits for it until its deadline. A function the manifest
// marks idempotent is tried once more if the process dies mid-call.
//
// Call resolves exactly once: it returns the output, or a *CallError whose
// Code says why (errors.Is works with the Err* sentinels and with
// context.DeadlineExceeded and context.Canceled).
func (p *Plugin) Call(ctx context.Context, function string, input []byte) ([]byte, error) {
	out, err := p.sup.Call(ctx, function, input)
	if err != nil {
		return nil, callError(p.name, function, err)
	}
	return out, nil
}

// CallJSON calls function with in encoded as JSON and decodes the output
// as JSON into an Out.
//
//	toc, err := airlock.CallJSON[TOC](ctx, p, "toc", Doc{Markdown: text})
func CallJSON[Out any](ctx context.Context, p *Plugin, function string, in any) (Out, error) {
	var out Out
	b, err := json.Marshal(in)
	if err != nil {
		return out, &CallError{Plugin: p.name, Function: function, Code: CodeBadInput, Message: fmt.Sprintf("encode input as JSON: %v", err), Err: err}
	}
	res, err := p.Call(ctx, function, b)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, &CallError{Plugin: p.name, Function: function, Code: CodeBadOutput, Message: fmt.Sprintf("decode output as JSON: %v", err), Err: err}
	}
	return out, nil
}

// Close drains the plugin and stops it (see the lifecycle above) and
// removes it from its host. It always returns; ctx bounds how long calls in
// flight may still run. Closing twice is harmless.
func (p *Plugin) Close(ctx context.Context) error {
	err := p.sup.Close(ctx)
	p.host.forget(p)
	return err
}
