package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/airlockhq/airlock/internal/rpc"
	"github.com/airlockhq/airlock/internal/wire"
)

// Serve connects to the host, negotiates the protocol version and serves
// calls until the host shuts the plugin down (nil) or the connection fails.
// It first sizes the garbage collector to the plugin (see the package
// doc's Memory section) unless the plugin already chose its own settings.
func (p *Plugin) Serve() error {
	conn, err := hostConn()
	if err != nil {
		return err
	}
	tuneGC()
	return p.ServeConn(conn)
}

// ServeConn serves the plugin over an already open connection to a host.
// Tests and custom transports use it; Serve uses the process tier's fd 3.
func (p *Plugin) ServeConn(conn io.ReadWriteCloser) error {
	r := wire.NewReader(conn, 64<<10, wire.HandshakeMaxFrame)
	hello, err := readHello(r)
	if err != nil {
		conn.Close()
		return &exitCodeError{code: exitProtocol, err: err}
	}
	version, err := wire.Negotiate(hello.Versions, wire.Supported)
	if err != nil {
		// Tell the host why (the message names both ranges), then give up.
		_, _ = conn.Write(wire.Failure{Code: wire.CodeVersionMismatch, Message: err.Error()}.AppendFrame(nil, 0))
		conn.Close()
		return &exitCodeError{code: exitVersionMismatch, err: err}
	}
	welcome := wire.Welcome{
		Version:   version,
		Versions:  wire.Supported,
		MaxFrame:  wire.DefaultMaxFrame,
		SDK:       "airlock-go/" + SDKVersion,
		Functions: p.Functions(),
	}
	if _, err := conn.Write(welcome.AppendFrame(nil)); err != nil {
		conn.Close()
		return &exitCodeError{code: exitProtocol, err: fmt.Errorf("send welcome: %w", err)}
	}
	r.SetMaxFrame(wire.DefaultMaxFrame)

	stopped := make(chan struct{})
	var c *rpc.Conn
	c = rpc.New(conn, r, rpc.Options{
		Role:    rpc.RolePlugin,
		MaxSend: int(hello.MaxFrame),
		Handler: p.dispatch,
		OnGrant: p.setTokens,
		OnShutdown: func(grace time.Duration) {
			// Runs on the reading goroutine: drain elsewhere.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), grace)
				_ = c.Drain(ctx)
				cancel()
				_ = c.Send(wire.AppendEmpty(nil, wire.KindGoodbye, 0))
				close(stopped)
			}()
		},
	})
	p.mu.Lock()
	p.conn = c
	p.mu.Unlock()

	select {
	case <-stopped:
		c.Close(errors.New("shut down by the host"))
		return nil
	case <-c.Done():
		err := c.Err()
		c.Close(nil)
		var pe *rpc.ProtocolError
		if errors.As(err, &pe) {
			return &exitCodeError{code: exitProtocol, err: err}
		}
		// The host went away (end of stream): there is nobody left to serve.
		return nil
	}
}

func readHello(r *wire.Reader) (wire.Hello, error) {
	h, err := r.Next()
	if err != nil {
		return wire.Hello{}, fmt.Errorf("read hello: %w", err)
	}
	if h.Kind != wire.KindHello {
		return wire.Hello{}, fmt.Errorf("expected a hello frame first, got %v", h.Kind)
	}
	body, err := r.View()
	if err != nil {
		return wire.Hello{}, fmt.Errorf("read hello: %w", err)
	}
	hello, err := wire.DecodeHello(body)
	if err != nil {
		return wire.Hello{}, fmt.Errorf("decode hello: %w", err)
	}
	if hello.MaxFrame < wire.MinMaxFrame || hello.MaxFrame > wire.MaxMaxFrame {
		return wire.Hello{}, fmt.Errorf("host's max frame %d is outside %d..%d", hello.MaxFrame, wire.MinMaxFrame, wire.MaxMaxFrame)
	}
	return hello, nil
}
