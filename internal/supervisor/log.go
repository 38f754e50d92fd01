package supervisor

import (
	"context"
	"log/slog"

	"github.com/airlockhq/airlock/internal/wire"
)

// maxLogAttrs bounds the attributes kept from one plugin record.
const maxLogAttrs = 32

// pluginLog turns a LOG frame into a record in the host's log, charged to
// the plugin's log budget (shared with its stdout and stderr lines). It runs
// on the connection's reading goroutine, so a record over budget costs no
// decoding. slog's handlers escape control characters in the untrusted text.
func (s *Supervisor) pluginLog(callID uint64, body []byte) {
	if s.budget != nil && !s.budget.Allow() {
		s.counts.logDropped.Add(1)
		return
	}
	rec, err := wire.DecodeLog(body)
	if err != nil {
		s.log.Warn("dropped a malformed log record from the plugin", "err", err)
		return
	}
	level := slog.Level(max(min(rec.Level, 12), -8))
	attrs := make([]slog.Attr, 0, min(len(rec.Attrs), maxLogAttrs)+2)
	attrs = append(attrs, slog.String("source", "plugin"))
	if callID != 0 {
		attrs = append(attrs, slog.Uint64("call", callID))
	}
	for i, a := range rec.Attrs {
		if i == maxLogAttrs {
			attrs = append(attrs, slog.Int("attrs_dropped", len(rec.Attrs)-maxLogAttrs))
			break
		}
		attrs = append(attrs, slog.String("plugin."+a.Key, a.Value))
	}
	s.log.LogAttrs(context.Background(), level, rec.Message, attrs...)
}
