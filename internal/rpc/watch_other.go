//go:build !linux

package rpc

import "io"

// watcher is Linux-only (it needs epoll); elsewhere the reading role is
// handed to another goroutine before each call runs.
type watcher struct{}

func newWatcher(io.ReadWriteCloser) *watcher { return nil }
func (*watcher) arm() error                  { return nil }
func (*watcher) disarm() error               { return nil }
func (*watcher) wait() bool                  { return false }
func (*watcher) stop()                       {}
func (*watcher) close()                      {}
