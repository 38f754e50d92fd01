//go:build !linux

package rpc

import (
	"errors"
	"io"
)

// Watcher needs epoll, so it is Linux-only. Elsewhere NewWatcher fails and
// connections keep a goroutine reading for them.
type Watcher struct{}

// NewWatcher reports that this platform has no watcher.
func NewWatcher() (*Watcher, error) {
	return nil, errors.New("rpc: no socket watcher on this platform")
}

// Close does nothing.
func (*Watcher) Close() {}

func socketFD(io.ReadWriteCloser) (int, bool) { return 0, false }
func (*Watcher) add(*Conn, int) error         { return errors.New("no watcher") }
func (*Watcher) remove(int)                   {}
func (*Watcher) arm(int) error                { return errors.New("no watcher") }
func (*Watcher) disarm(int) error             { return nil }
