//go:build !linux

package fscap

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlockhq/airlock/internal/capability"
)

// ErrUnsupported: the fs capabilities need Linux's openat2 or O_PATH walk.
var ErrUnsupported = errors.New("fs capabilities are only available on Linux")

// Mode reports that no safe resolution is available here.
func Mode() string { return "unsupported" }

func (f *FS) Call(context.Context, *capability.Call) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", f.name, ErrUnsupported)
}
