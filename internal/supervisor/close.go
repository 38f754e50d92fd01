package supervisor

import (
	"context"
	"time"

	"github.com/airlockhq/airlock/internal/wire"
)

// Close drains and stops the plugin, and always returns:
//
//  1. new calls are refused (NotServingError, state draining);
//  2. calls in flight run until they finish or ctx is done;
//  3. SHUTDOWN tells the plugin to finish within the time ctx has left,
//     and the host waits half of limits.shutdown_timeout for it to exit;
//  4. SIGTERM, then the other half;
//  5. SIGKILL of the plugin's whole process tree.
//
// Calls still in flight when the process ends fail with its exit error.
// Closing twice waits for the first Close.
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.closed
		return nil
	}
	s.closing = true
	inst := s.inst
	failed := s.state == StateFailed
	s.mu.Unlock()

	idle := s.gate.close()
	if failed {
		return nil
	}
	s.publish(StateDraining, nil, errClosing)
	select {
	case <-idle:
	case <-ctx.Done():
	}
	if inst != nil {
		s.shutdown(ctx, inst)
	}
	s.loop.Wait() // a restart under way notices closing and stops
	s.publish(StateStopped, nil, errClosing)
	s.markClosed()
	return nil
}

func (s *Supervisor) shutdown(ctx context.Context, inst *instance) {
	half := time.Duration(s.m.Limits.ShutdownTimeout) / 2
	grace := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		grace = max(time.Until(dl), 0)
	}
	_ = inst.conn.Send(wire.Shutdown{Grace: grace}.AppendFrame(nil))
	if s.waitEnded(inst, grace+half) {
		return
	}
	s.log.Warn("plugin did not exit after shutdown; sending SIGTERM", "instance", inst.id)
	inst.proc.Terminate()
	if s.waitEnded(inst, half) {
		return
	}
	s.log.Warn("plugin did not exit after SIGTERM; killing its process tree", "instance", inst.id)
	inst.kill("did not exit within limits.shutdown_timeout")
	<-inst.ended
}

func (s *Supervisor) waitEnded(inst *instance, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-inst.ended:
		return true
	case <-t.C:
		return false
	}
}
