//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileCase is one attack from the catalogue, run to its end inside the
// full sandbox.
type hostileCase struct {
	mode string
	// setup returns the spec tweaks and the victim's arguments after the
	// mode; it may start helpers (a listener, a stand-in host).
	setup func(t *testing.T) (Spec, []string, func(t *testing.T, r *run))
}

func TestHostile(t *testing.T) {
	needFull(t)
	for _, tc := range hostileCases() {
		t.Run(tc.mode, func(t *testing.T) {
			spec, args, check := tc.setup(t)
			spec.Require = fullRequire
			r := runVictim(t, spec, append([]string{tc.mode}, args...)...)
			if got := r.sb.Applied(); len(got) != len(Protections()) {
				t.Errorf("Applied = %v, want every protection", got)
			}
			check(t, r)
			assertNothingLeft(t, r)
		})
	}
}

func wantErrno(t *testing.T, r *run, allowed ...string) {
	t.Helper()
	if !r.hasRes {
		t.Fatalf("the victim printed no result (wait: %v)", r.waitErr)
	}
	if r.res.Count != 0 {
		t.Errorf("the attack got through: count %d, %s", r.res.Count, r.res.Detail)
	}
	if !slices.Contains(allowed, r.res.Errno) {
		t.Errorf("the attack failed with %q (%s), want one of %v", r.res.Errno, r.res.Err, allowed)
	}
}

func hostileCases() []hostileCase {
	return []hostileCase{
		{"memory-balloon", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{Memory: 64 << 20}, []string{"1024"}, func(t *testing.T, r *run) {
				if r.signal() != syscall.SIGKILL {
					t.Errorf("the balloon ended with %v, want SIGKILL from the memory limit", r.waitErr)
				}
				if r.events.OOMKills < 1 {
					t.Errorf("Events.OOMKills = %d, want at least 1", r.events.OOMKills)
				}
				if r.hasRes && r.res.Count >= 64 {
					t.Errorf("the balloon got %d MiB under a 64 MiB limit", r.res.Count)
				}
			}
		}},
		{"fork-bomb", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{Tasks: 32}, nil, func(t *testing.T, r *run) {
				wantForkStopped(t, r, 32)
			}
		}},
		{"thread-bomb", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{Tasks: 32}, nil, func(t *testing.T, r *run) {
				if r.hasRes {
					t.Fatalf("the thread bomb started %d threads under a 32-task limit", r.res.Count)
				}
				if r.exitCode() == 0 {
					t.Errorf("the thread bomb exited cleanly, want the Go runtime to abort")
				}
				if !strings.Contains(r.stderr, "failed to create new OS thread") && !strings.Contains(r.stderr, "resource temporarily unavailable") {
					t.Errorf("stderr does not say a thread was refused: %.300s", r.stderr)
				}
				if r.events.PidsMax < 1 {
					t.Errorf("Events.PidsMax = %d, want at least 1", r.events.PidsMax)
				}
			}
		}},
		{"cpu-spin", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{CPU: 0.5, CPUTime: time.Second}, nil, func(t *testing.T, r *run) {
				if r.signal() != syscall.SIGKILL {
					t.Errorf("the spinner ended with %v, want SIGKILL from RLIMIT_CPU", r.waitErr)
				}
				if r.events.CPUThrottled < 1 {
					t.Errorf("Events.CPUThrottled = %d, want the CFS quota to have throttled it", r.events.CPUThrottled)
				}
			}
		}},
		{"fd-exhaust", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{OpenFiles: 64}, nil, func(t *testing.T, r *run) {
				if !r.hasRes || r.res.Errno != "EMFILE" {
					t.Fatalf("fd exhaustion ended with %+v, want EMFILE", r.res)
				}
				if r.res.Count > 64 {
					t.Errorf("opened %d descriptors under a limit of 64", r.res.Count)
				}
			}
		}},
		{"disk-fill", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			const disk = 8 << 20
			before, _ := filepath.Glob("/tmp/airlock-fill-*")
			return Spec{Disk: disk}, []string{"/tmp", "64"}, func(t *testing.T, r *run) {
				if !r.hasRes || (r.res.Errno != "ENOSPC" && r.res.Errno != "EFBIG") {
					t.Fatalf("disk fill ended with %+v, want ENOSPC or EFBIG", r.res)
				}
				if r.res.Count > disk {
					t.Errorf("wrote %d bytes into a %d-byte /tmp", r.res.Count, disk)
				}
				if after, _ := filepath.Glob("/tmp/airlock-fill-*"); len(after) != len(before) {
					t.Errorf("the plugin's files reached the host's /tmp: %v", after)
				}
			}
		}},
		{"net-tcp-loopback", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			return Spec{}, []string{port}, func(t *testing.T, r *run) {
				wantErrno(t, r, "EACCES", "ENETUNREACH")
				ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
				if c, err := ln.Accept(); err == nil {
					c.Close()
					t.Error("the host's loopback listener accepted a connection from the plugin")
				}
			}
		}},
		{"net-tcp-external", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{}, nil, func(t *testing.T, r *run) {
				wantErrno(t, r, "EACCES", "ENETUNREACH")
			}
		}},
		{"net-udp", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
			return Spec{}, []string{port}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENETUNREACH", "EACCES")
				pc.SetDeadline(time.Now().Add(100 * time.Millisecond))
				if _, _, err := pc.ReadFrom(make([]byte, 64)); err == nil {
					t.Error("the host's UDP socket received a datagram from the plugin")
				}
			}
		}},
		{"read-shadow", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{}, nil, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENOENT", "EACCES")
			}
		}},
		{"read-host-environ", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			return Spec{}, []string{strconv.Itoa(host.Process.Pid)}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENOENT", "EACCES")
				if strings.Contains(r.stdout, "stand-in-secret") {
					t.Error("the host's secret leaked into the plugin")
				}
			}
		}},
		{"write-outside", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			dir := t.TempDir()
			openUp(t, dir)
			os.Chmod(dir, 0o777)
			target := filepath.Join(dir, "escape.txt")
			return Spec{}, []string{target}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENOENT", "EACCES", "EROFS")
				if _, err := os.Stat(target); err == nil {
					t.Errorf("the plugin created %s on the host", target)
				}
			}
		}},
		{"path-traversal", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			dir := pluginDir(t)
			secret := filepath.Join(filepath.Dir(dir), "secret.txt")
			if err := os.WriteFile(secret, []byte("sibling secret\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return Spec{Dir: dir}, []string{"../secret.txt"}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENOENT", "EACCES")
			}
		}},
		{"symlink-escape", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			base := t.TempDir()
			openUp(t, base)
			secret := filepath.Join(base, "secret.txt")
			if err := os.WriteFile(secret, []byte("host secret\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			work := filepath.Join(base, "work")
			if err := os.Mkdir(work, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(work, 0o777)
			return Spec{WritePaths: []string{work}}, []string{work, secret}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ENOENT", "EACCES")
				if fi, err := os.Lstat(filepath.Join(work, "airlock-escape-link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("the plugin could not even create its symlink in the granted directory (%v): the grant is broken", err)
				}
			}
		}},
		{"setuid-exec", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			dir := pluginDir(t)
			suid := filepath.Join(dir, "victim-suid")
			copyFile(t, victimPath, suid, 0o755)
			if err := os.Chmod(suid, 0o4755|os.ModeSetuid); err != nil {
				t.Fatal(err)
			}
			return Spec{Dir: dir}, []string{suid}, func(t *testing.T, r *run) {
				if !r.hasRes {
					t.Fatalf("no result (wait: %v)", r.waitErr)
				}
				if r.res.Count != 0 || r.res.Err != "" {
					t.Errorf("exec of a setuid-root program: %+v, want it to run without gaining ids or capabilities", r.res)
				}
			}
		}},
		{"dev-shm-leftover", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			name := fmt.Sprintf("airlock-leftover-%d", time.Now().UnixNano())
			key := 0x41000000 + int(time.Now().UnixNano()&0xffff)
			t.Cleanup(func() { os.Remove("/dev/shm/" + name) })
			return Spec{}, []string{name, strconv.Itoa(key)}, func(t *testing.T, r *run) {
				if _, err := os.Stat("/dev/shm/" + name); err == nil {
					t.Errorf("/dev/shm/%s outlived the plugin on the host", name)
				}
				shm, _ := os.ReadFile("/proc/sysvipc/shm")
				for _, line := range strings.Split(string(shm), "\n")[1:] {
					if f := strings.Fields(line); len(f) > 0 && f[0] == strconv.Itoa(key) {
						t.Errorf("the plugin's System V segment (key %d) outlived it: %s", key, line)
					}
				}
			}
		}},
		{"ptrace-host", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			return Spec{}, []string{strconv.Itoa(host.Process.Pid)}, func(t *testing.T, r *run) {
				wantErrno(t, r, "EPERM", "ESRCH")
				assertUntouched(t, host)
			}
		}},
		{"pidfd-getfd-host", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			return Spec{}, []string{strconv.Itoa(host.Process.Pid)}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ESRCH", "EPERM")
				assertUntouched(t, host)
			}
		}},
		{"process-vm-readv-host", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			return Spec{}, []string{strconv.Itoa(host.Process.Pid)}, func(t *testing.T, r *run) {
				wantErrno(t, r, "EPERM", "ESRCH")
			}
		}},
		{"kill-host", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			return Spec{}, []string{strconv.Itoa(host.Process.Pid)}, func(t *testing.T, r *run) {
				wantErrno(t, r, "ESRCH", "EPERM")
				assertUntouched(t, host)
			}
		}},
		{"kill-all", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			host := standIn(t)
			bystander, _, _ := start(t, Spec{Instance: "bystander"}, opts{}, "sleep")
			t.Cleanup(func() {
				bystander.sb.Kill()
				bystander.finish(t, 10*time.Second, nil, nil)
				assertNothingLeft(t, bystander)
			})
			return Spec{}, nil, func(t *testing.T, r *run) {
				if !r.hasRes {
					t.Fatalf("no result (wait: %v)", r.waitErr)
				}
				assertUntouched(t, host)
				if err := bystander.cmd.Process.Signal(syscall.Signal(0)); err != nil {
					t.Errorf("kill(-1) in one plugin killed another plugin: %v", err)
				}
			}
		}},
		{"try-syscalls", func(t *testing.T) (Spec, []string, func(*testing.T, *run)) {
			return Spec{}, nil, func(t *testing.T, r *run) {
				if !r.hasRes {
					t.Fatalf("no result (wait: %v)", r.waitErr)
				}
				want := map[string]string{
					"clone3": "ENOSYS", "unknown-1023": "ENOSYS",
					"socket-netlink": "EAFNOSUPPORT", "socket-packet": "EAFNOSUPPORT",
				}
				for name := range r.res.Calls {
					if _, ok := want[name]; !ok {
						want[name] = "EPERM"
					}
				}
				for name, errno := range want {
					if got := r.res.Calls[name]; got != errno {
						t.Errorf("%s returned %s, want %s", name, got, errno)
					}
				}
			}
		}},
	}
}

func wantForkStopped(t *testing.T, r *run, tasks int64) {
	t.Helper()
	if !r.hasRes {
		t.Fatalf("no result (wait: %v)", r.waitErr)
	}
	if r.res.Errno != "EAGAIN" {
		t.Errorf("the fork bomb stopped with %q (%s), want EAGAIN", r.res.Errno, r.res.Err)
	}
	if r.res.Count >= tasks {
		t.Errorf("the fork bomb made %d processes under a %d-task limit", r.res.Count, tasks)
	}
	if r.events.PidsMax < 1 {
		t.Errorf("Events.PidsMax = %d, want at least 1", r.events.PidsMax)
	}
}

// TestHostile_SetsidOrphan: an orphan in its own session, left behind by a
// plugin that is still running, dies with the tree.
func TestHostile_SetsidOrphan(t *testing.T) {
	needFull(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r, _, errOut := start(t, Spec{Require: fullRequire}, opts{out: pw}, "--stay", "setsid-orphan")
	pw.Close()
	res := readLine(t, pr)
	if res.PID == 0 {
		t.Fatalf("no orphan reported: %+v", res)
	}
	procs, _ := r.sb.group.Procs()
	if len(procs) < 2 {
		t.Fatalf("cgroup holds %v; want the plugin and its orphan", procs)
	}
	if err := r.sb.Kill(); err != nil {
		t.Errorf("Kill: %v", err)
	}
	go io.Copy(io.Discard, pr)
	r.finish(t, 30*time.Second, nil, errOut)
	if r.signal() != syscall.SIGKILL {
		t.Errorf("the plugin ended with %v, want SIGKILL", r.waitErr)
	}
	for _, pid := range procs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d of the plugin's tree survived Kill and Close (kill 0: %v)", pid, err)
		}
	}
	assertNothingLeft(t, r)
}

// TestHostile_SeccompStatus: every thread of the plugin is filtered, has
// no_new_privs and no capability, and runs as the plugin's own
// unprivileged host uid, seen from the host.
func TestHostile_SeccompStatus(t *testing.T) {
	needFull(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r, _, errOut := start(t, Spec{Require: fullRequire}, opts{out: pw}, "--stay", "seccomp-status")
	pw.Close()
	res := readLine(t, pr)
	if len(res.Threads) < 4 {
		t.Errorf("the victim reported %d threads; want the runtime's and its own", len(res.Threads))
	}
	for _, th := range res.Threads {
		if th.Seccomp != "2" || th.NoNewPrivs != "1" || th.CapEff != "0000000000000000" {
			t.Errorf("thread %d (inside view): Seccomp %s, NoNewPrivs %s, CapEff %s", th.TID, th.Seccomp, th.NoNewPrivs, th.CapEff)
		}
	}
	// The host's view of every thread.
	pid := r.cmd.Process.Pid
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	if adj, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid)); err != nil || strings.TrimSpace(string(adj)) != "1000" {
		t.Errorf("oom_score_adj = %q (%v), want 1000: the system OOM killer must pick the plugin before the host", adj, err)
	}
	if r.uid == 0 || r.uid == os.Geteuid() {
		t.Errorf("the plugin runs as host uid %d: want an unprivileged uid of its own", r.uid)
	}
	for _, task := range tasks {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		s := string(st)
		uids := strings.Fields(field(s, "Uid"))
		if field(s, "Seccomp") != "2" || field(s, "NoNewPrivs") != "1" || len(uids) != 4 {
			t.Errorf("host view of thread %s: Seccomp %q NoNewPrivs %q Uid %q", task.Name(), field(s, "Seccomp"), field(s, "NoNewPrivs"), field(s, "Uid"))
		}
		for _, u := range uids {
			if u != strconv.Itoa(r.uid) {
				t.Errorf("host view of thread %s: Uid %v, want %d everywhere", task.Name(), uids, r.uid)
				break
			}
		}
		if g := field(s, "Groups"); g != "" {
			t.Errorf("host view of thread %s: supplementary groups %q, want none", task.Name(), g)
		}
	}
	_ = r.sb.Kill()
	go io.Copy(io.Discard, pr)
	r.finish(t, 30*time.Second, nil, errOut)
	assertNothingLeft(t, r)
}

func field(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// TestHostile_Flood: a plugin flooding stdout or stderr is still killed at
// once, and Wait returns.
func TestHostile_Flood(t *testing.T) {
	needFull(t)
	for _, mode := range []string{"stdout-flood", "stderr-flood"} {
		t.Run(mode, func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			o := opts{out: pw}
			if mode == "stderr-flood" {
				o = opts{err: pw}
			}
			r, out, errOut := start(t, Spec{Require: fullRequire}, o, mode)
			pw.Close()
			if n, err := io.CopyN(io.Discard, pr, 4<<20); err != nil {
				t.Fatalf("read the flood: %d bytes, %v", n, err)
			}
			if err := r.sb.Kill(); err != nil {
				t.Errorf("Kill: %v", err)
			}
			go io.Copy(io.Discard, pr)
			r.finish(t, 30*time.Second, out, errOut)
			if r.signal() != syscall.SIGKILL {
				t.Errorf("the flooder ended with %v, want SIGKILL", r.waitErr)
			}
			assertNothingLeft(t, r)
		})
	}
}
