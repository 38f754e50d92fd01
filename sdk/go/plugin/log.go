package plugin

import (
	"context"
	"log/slog"

	"github.com/airlockhq/airlock/internal/wire"
)

// logHandler is a slog.Handler that sends each record to the host as a LOG
// frame. Attributes are rendered as text here; groups are flattened with
// dots. Records logged before the plugin is connected, or after, are
// dropped: a plugin's log has nowhere else to go (stdout and stderr are the
// host's fallback and are captured too).
type logHandler struct {
	p      *Plugin
	prefix string      // group path, with a trailing dot
	attrs  []wire.Attr // from WithAttrs
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.p.logLevel.Level()
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.p.mu.Lock()
	conn := h.p.conn
	h.p.mu.Unlock()
	if conn == nil {
		return nil
	}
	attrs := make([]wire.Attr, len(h.attrs), len(h.attrs)+r.NumAttrs())
	copy(attrs, h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendAttr(attrs, h.prefix, a)
		return true
	})
	var id uint64
	if ci, ok := ctx.Value(callKey{}).(callInfo); ok {
		id = ci.id
	}
	frame := wire.Log{Level: int32(r.Level), Message: r.Message, Attrs: attrs}.AppendFrame(nil, id)
	return conn.Post(frame)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &logHandler{p: h.p, prefix: h.prefix, attrs: append([]wire.Attr(nil), h.attrs...)}
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{p: h.p, prefix: h.prefix + name + ".", attrs: h.attrs}
}

func appendAttr(dst []wire.Attr, prefix string, a slog.Attr) []wire.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, p, g)
		}
		return dst
	}
	return append(dst, wire.Attr{Key: prefix + a.Key, Value: a.Value.String()})
}
