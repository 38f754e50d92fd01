package attack

import (
	"errors"
	"runtime"
	"testing"
)

func TestRun_UnknownMode(t *testing.T) {
	_, err := Run("no-such-attack", nil)
	if !errors.Is(err, ErrUnknownMode) {
		t.Fatalf("Run(no-such-attack) error = %v, want ErrUnknownMode", err)
	}
}

func TestRun_BadArguments(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the attacks are Linux-only")
	}
	tests := []struct {
		mode string
		args []string
	}{
		{"read-host-environ", nil},
		{"read-host-environ", []string{"not-a-pid"}},
		{"kill-host", []string{"-5"}},
		{"memory-balloon", []string{"lots"}},
		{"net-tcp-loopback", nil},
		{"net-tcp-external", []string{"example.com:80"}},
		{"symlink-escape", []string{"/tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			if _, err := Run(tt.mode, tt.args); err == nil {
				t.Fatalf("Run(%s, %q) accepted bad arguments", tt.mode, tt.args)
			}
		})
	}
}

// The unconfined outcomes show each probe reaches the kernel and is
// harmless there; inside a sandbox the same calls must fail differently.
func TestTrySyscalls_Unconfined(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the attacks are Linux-only")
	}
	res, err := Run("try-syscalls", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mount", "unshare", "setns", "bpf", "perf_event_open", "keyctl",
		"userfaultfd", "kexec_load", "init_module", "ptrace", "pidfd_getfd", "process_vm_readv",
		"clone3", "clone-newuser", "unknown-1023"} {
		if res.Calls[name] == "" {
			t.Errorf("try-syscalls did not report %s", name)
		}
	}
	if got := res.Calls["unknown-1023"]; got != "ENOSYS" {
		t.Errorf("unknown syscall 1023 = %s, want ENOSYS", got)
	}
	if got := res.Calls["mount"]; got == "OK" {
		t.Error("the mount probe succeeded: its target must not exist")
	}
}

func TestModes_Catalogue(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the attacks are Linux-only")
	}
	want := []string{"memory-balloon", "fork-bomb", "thread-bomb", "cpu-spin", "fd-exhaust", "disk-fill",
		"net-tcp-loopback", "net-tcp-external", "net-udp", "read-shadow", "read-host-environ",
		"write-outside", "path-traversal", "symlink-escape", "setuid-exec", "ptrace-host",
		"pidfd-getfd-host", "process-vm-readv-host", "kill-host", "kill-all", "setsid-orphan",
		"dev-shm-leftover", "try-syscalls", "stdout-flood", "stderr-flood", "seccomp-status"}
	have := map[string]bool{}
	for _, m := range Modes() {
		have[m] = true
	}
	for _, m := range want {
		if !have[m] {
			t.Errorf("mode %s missing from the catalogue", m)
		}
	}
}
