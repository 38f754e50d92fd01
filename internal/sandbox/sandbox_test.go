//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sandbox/launcher"

	"golang.org/x/sys/unix"
)

func TestSpec_Validate(t *testing.T) {
	needFixtures(t)
	outside := t.TempDir()
	if err := os.Symlink("/bin/true", filepath.Join(outside, "escape")); err != nil {
		t.Fatal(err)
	}
	ok := Spec{Name: "p", Dir: fixtureDir, Program: "victim"}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"no name", func(s *Spec) { s.Name = "" }, "Name is empty"},
		{"relative dir", func(s *Spec) { s.Dir = "plugins/p" }, "not an absolute path"},
		{"missing dir", func(s *Spec) { s.Dir = "/nonexistent/plugin" }, "not a directory"},
		{"no program", func(s *Spec) { s.Program = "" }, "Program is empty"},
		{"absolute program", func(s *Spec) { s.Program = "/bin/true" }, "is absolute"},
		{"program climbs out", func(s *Spec) { s.Program = "../victim" }, "leaves the plugin folder"},
		{"relative grant", func(s *Spec) { s.ReadPaths = []string{"etc"} }, "not an absolute path"},
		{"unclean grant", func(s *Spec) { s.ReadPaths = []string{"/tmp/../etc"} }, "not a clean path"},
		{"root grant", func(s *Spec) { s.WritePaths = []string{"/"} }, "whole host file system"},
		{"missing grant", func(s *Spec) { s.ReadPaths = []string{"/nonexistent/airlock"} }, "no such file"},
		{"too few tasks", func(s *Spec) { s.Tasks = 4 }, "cannot start"},
		{"negative memory", func(s *Spec) { s.Memory = -1 }, "negative"},
		{"cgroup parent climbs", func(s *Spec) { s.CgroupParent = "../x" }, "climbs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.modify(&s)
			err := s.withDefaults().validate()
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate = %v, want ErrInvalidSpec mentioning %q", err, tt.want)
			}
		})
	}
	if err := ok.withDefaults().validate(); err != nil {
		t.Fatalf("a valid spec: %v", err)
	}
}

func TestPrepare_RejectsBadPrograms(t *testing.T) {
	needFixtures(t)
	dir := pluginDir(t)
	outside := filepath.Join(filepath.Dir(dir), "outside")
	copyFile(t, victimPath, outside, 0o755)
	if err := os.Symlink(outside, filepath.Join(dir, "link-out")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, victimPath, filepath.Join(dir, "private"), 0o700)
	tests := []struct{ program, want string }{
		{"link-out", "outside the plugin folder"},
		{"private", "not readable and executable by the plugin's uid"},
		{"missing", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.program, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(dir, tt.program))
			_, err := Prepare(context.Background(), cmd, Spec{Name: "p", Dir: dir, Program: tt.program, IDs: testIDs}, nil)
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Prepare = %v, want ErrInvalidSpec mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPrepare_Require(t *testing.T) {
	needFixtures(t)
	t.Run("unknown name", func(t *testing.T) {
		_, err := Prepare(context.Background(), exec.Command("victim"),
			Spec{Name: "p", Dir: fixtureDir, Program: "victim", Require: []string{"seccomp", "selinux"}}, nil)
		if !errors.Is(err, ErrUnknownProtection) || !strings.Contains(err.Error(), `"selinux"`) {
			t.Fatalf("Prepare = %v, want ErrUnknownProtection naming selinux", err)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		_, err := prepareWithout(context.Background(), exec.Command("victim"),
			Spec{Name: "p", Dir: fixtureDir, Program: "victim", Require: []string{Seccomp, Landlock}}, nil, []string{Landlock})
		var ue *UnavailableError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) || ue.Protection != Landlock || ue.Reason == "" {
			t.Fatalf("Prepare = %v, want an UnavailableError naming landlock with a reason", err)
		}
		if !strings.Contains(err.Error(), "landlock") || !strings.Contains(err.Error(), "disabled by the test") {
			t.Errorf("message %q does not name the protection and the reason", err)
		}
	})
}

func TestCheckRequire(t *testing.T) {
	r := Report{Mechanisms: []Mechanism{
		{Name: Seccomp, Available: true},
		{Name: CgroupMemory, Reason: "no memory controller"},
	}}
	if err := checkRequire([]string{Seccomp}, r); err != nil {
		t.Errorf("checkRequire(seccomp) = %v", err)
	}
	var ue *UnavailableError
	if err := checkRequire([]string{Seccomp, CgroupMemory}, r); !errors.As(err, &ue) || ue.Protection != CgroupMemory || ue.Reason != "no memory controller" {
		t.Errorf("checkRequire(cgroup_memory) = %v", err)
	}
	if err := checkRequire([]string{"apparmor"}, r); !errors.Is(err, ErrUnknownProtection) {
		t.Errorf("checkRequire(apparmor) = %v", err)
	}
}

// TestSandbox_OnlyStdioAndSocket: the plugin holds fds 0-3 and nothing
// else, even when the host leaks a descriptor without close-on-exec.
func TestSandbox_OnlyStdioAndSocket(t *testing.T) {
	needFull(t)
	leak, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	r := runVictim(t, Spec{Require: fullRequire}, "fds")
	if !r.hasRes || !slices.Equal(r.res.FDs, []int{0, 1, 2, 3}) {
		t.Fatalf("the plugin holds %v (%s), want [0 1 2 3]", r.res.FDs, r.res.Detail)
	}
	if !strings.Contains(r.res.Detail, "3=socket:") {
		t.Errorf("fd 3 is not the socketpair: %s", r.res.Detail)
	}
	assertNothingLeft(t, r)
}

// TestSandbox_RunsTheCheckedFile: with Spec.Exec the launcher runs the
// file the host opened and checked, even when another file has taken its
// name since, and the plugin does not inherit the descriptor.
func TestSandbox_RunsTheCheckedFile(t *testing.T) {
	needFull(t)
	dir := pluginDir(t)
	exe, err := os.Open(filepath.Join(dir, "victim"))
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()

	r := runVictim(t, Spec{Dir: dir, Exec: exe, Require: fullRequire}, "fds")
	if !r.hasRes || !slices.Equal(r.res.FDs, []int{0, 1, 2, 3}) {
		t.Fatalf("the plugin holds %v (%s), want [0 1 2 3]", r.res.FDs, r.res.Detail)
	}

	// Put something that cannot run where the checked program was.
	swapped := filepath.Join(dir, "swapped")
	if err := os.WriteFile(swapped, []byte("not the program that was checked\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(swapped, filepath.Join(dir, "victim")); err != nil {
		t.Fatal(err)
	}
	r = runVictim(t, Spec{Dir: dir, Exec: exe, Require: fullRequire}, "env")
	if !r.hasRes || r.res.Detail != "AIRLOCK_PLUGIN=victim" {
		t.Fatalf("the checked program did not run (wait: %v, stderr: %s)", r.waitErr, r.stderr)
	}
}

func TestSandbox_Environment(t *testing.T) {
	needFull(t)
	r := runVictim(t, Spec{Require: fullRequire}, "env")
	if !r.hasRes || r.res.Detail != "AIRLOCK_PLUGIN=victim" {
		t.Fatalf("the plugin's environment is %q, want exactly the one the host gave", r.res.Detail)
	}
}

// TestSandbox_Grants: granted paths are usable, read-only ones read-only.
func TestSandbox_Grants(t *testing.T) {
	needFull(t)
	base := t.TempDir()
	openUp(t, base)
	readable := filepath.Join(base, "config.txt")
	if err := os.WriteFile(readable, []byte("granted config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	// The plugin's uid is only known at Prepare; grant by mode.
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	spec := Spec{ReadPaths: []string{readable}, WritePaths: []string{data}, Require: fullRequire}

	t.Run("read a granted file", func(t *testing.T) {
		r := runVictim(t, spec, "read-shadow", readable)
		if !r.hasRes || r.res.Detail != "granted config" {
			t.Fatalf("read %+v, want the granted file's content", r.res)
		}
	})
	t.Run("write into a granted directory", func(t *testing.T) {
		target := filepath.Join(data, "out.txt")
		r := runVictim(t, spec, "write-outside", target)
		if !r.hasRes || r.res.Count == 0 {
			t.Fatalf("write %+v, want it to succeed", r.res)
		}
		fi, err := os.Stat(target)
		if err != nil {
			t.Fatalf("the plugin's file is not on the host: %v", err)
		}
		if owner := int(fi.Sys().(*syscall.Stat_t).Uid); owner != r.uid {
			t.Errorf("the file belongs to uid %d, want the plugin's uid %d", owner, r.uid)
		}
	})
	t.Run("a read grant is read-only", func(t *testing.T) {
		r := runVictim(t, spec, "write-outside", readable)
		wantErrno(t, r, "EROFS", "EACCES")
	})
}

// TestSandbox_GrantSwappedForSymlink: a granted path that becomes a
// symlink between Prepare and the launch aborts the launch.
func TestSandbox_GrantSwappedForSymlink(t *testing.T) {
	needFull(t)
	base := t.TempDir()
	openUp(t, base)
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(victimPath, "true")
	s, err := Prepare(context.Background(), cmd, Spec{Name: "swap", Dir: fixtureDir, Program: "victim", ReadPaths: []string{data}, IDs: testIDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// What a plugin with write access to base could do between two starts.
	if err := os.Rename(data, data+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", data); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = s.Started()
	_ = cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("Started = %v, want the launch refused because the grant became a symlink", err)
	}
}

func TestSandbox_DynamicBinaries(t *testing.T) {
	needFull(t)
	t.Run("go-cgo", func(t *testing.T) {
		if dynVictimPath == "" {
			t.Skip("no C toolchain to build a dynamically linked victim")
		}
		r := runVictim(t, Spec{Program: "victim-dynamic", Require: fullRequire}, "fds")
		if !r.hasRes {
			t.Fatalf("the dynamically linked victim did not run: %v\n%s", r.waitErr, r.stderr)
		}
	})
	t.Run("rust", func(t *testing.T) {
		rustc, err := exec.LookPath("rustc")
		if err != nil {
			if home, _ := os.UserHomeDir(); home != "" {
				rustc = filepath.Join(home, ".cargo", "bin", "rustc")
			}
			if _, err := os.Stat(rustc); err != nil {
				t.Skip("no rustc")
			}
		}
		dir := pluginDir(t)
		src := filepath.Join(t.TempDir(), "hello.rs")
		prog := `use std::io::Write;
fn main() {
    let t = std::thread::spawn(|| 40 + 2);
    let n = t.join().unwrap();
    let tmp = std::env::temp_dir().join("rust-was-here");
    std::fs::write(&tmp, b"x").unwrap();
    std::io::stdout().write_all(format!("hello from rust {} {}\n", n, std::fs::read(&tmp).unwrap().len()).as_bytes()).unwrap();
}
`
		if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(rustc, "-O", "-o", filepath.Join(dir, "hello"), src).CombinedOutput()
		if err != nil {
			t.Skipf("rustc failed: %v\n%s", err, out)
		}
		os.Chmod(filepath.Join(dir, "hello"), 0o755)
		r := runVictim(t, Spec{Dir: dir, Program: "hello", Require: fullRequire})
		if strings.TrimSpace(r.stdout) != "hello from rust 42 1" {
			t.Fatalf("the Rust program printed %q (wait %v, stderr %q)", r.stdout, r.waitErr, r.stderr)
		}
	})
}

// TestSandbox_DistinctUIDs: two instances at once never share a host uid.
func TestSandbox_DistinctUIDs(t *testing.T) {
	needFull(t)
	a, _, _ := start(t, Spec{Instance: "a", Require: fullRequire}, opts{}, "sleep")
	b, _, _ := start(t, Spec{Instance: "b", Require: fullRequire}, opts{}, "sleep")
	for _, r := range []*run{a, b} {
		if u, err := hostUID(r.cmd.Process.Pid); err != nil || u != r.uid {
			t.Errorf("plugin %d runs as host uid %d (%v), want %d", r.cmd.Process.Pid, u, err, r.uid)
		}
		if r.uid == 0 {
			t.Error("a plugin runs as host root")
		}
	}
	if a.uid == b.uid {
		t.Errorf("both instances run as uid %d", a.uid)
	}
	for _, r := range []*run{a, b} {
		_ = r.sb.Kill()
		r.finish(t, 10*time.Second, nil, nil)
		assertNothingLeft(t, r)
		if err := r.sb.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if ev := r.sb.Events(); ev != r.events {
			t.Errorf("Events changed after Close: %+v then %+v", r.events, ev)
		}
	}
}

func TestIDPool(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "run", "ids.lock")
	if _, err := NewIDPool(0, 10, lock); err == nil {
		t.Error("NewIDPool accepted uid 0")
	}
	if _, err := NewIDPool(1<<32-5, 10, lock); err == nil {
		t.Error("NewIDPool accepted a range past 2^32-1")
	}
	p, err := NewIDPool(70000, 3, lock)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Another host on the machine, with an overlapping range.
	q, err := NewIDPool(69999, 3, lock)
	if err != nil {
		t.Fatal(err)
	}
	p.next, q.next = 0, 0 // start at the first uid, so the test knows which comes next
	must := func(id int, release func(), err error) (int, func()) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id, release
	}
	a, relA := must(p.acquire()) // 70000
	b, relB := must(p.acquire()) // 70001
	if a != 70000 || b != 70001 {
		t.Fatalf("p handed out %d, %d; want 70000, 70001", a, b)
	}
	c, relC := must(q.acquire()) // q's only free uid: 69999
	if c != 69999 {
		t.Fatalf("q handed out %d; want 69999, the one uid p does not hold", c)
	}
	if id, _, err := q.acquire(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("q handed out %d (%v); want an error saying all are in use", id, err)
	}
	relA()
	relA() // releasing twice is harmless
	d, relD := must(q.acquire())
	if d != 70000 {
		t.Fatalf("after p released 70000, q got %d", d)
	}
	// Round robin: p's next uid is 70002, not the 70000 it freed.
	e, relE := must(p.acquire())
	if e != 70002 {
		t.Fatalf("p handed out %d; want 70002", e)
	}
	relB()
	relC()
	relD()
	relE()
	// Closing frees everything for other hosts.
	f, _ := must(p.acquire())
	p.Close()
	if _, _, err := p.acquire(); err == nil {
		t.Error("a closed pool handed out a uid")
	}
	q2, _ := NewIDPool(uint32(f), 1, lock)
	defer q2.Close()
	if _, _, err := q2.acquire(); err != nil {
		t.Errorf("uid %d still locked after its pool closed: %v", f, err)
	}
}

func TestIDPool_StartsAtARandomUid(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "ids.lock")
	starts := map[int]bool{}
	for range 8 {
		p, err := NewIDPool(DefaultIDFirst, DefaultIDCount, lock)
		if err != nil {
			t.Fatal(err)
		}
		id, release, err := p.acquire()
		if err != nil {
			t.Fatal(err)
		}
		if id < DefaultIDFirst || id >= DefaultIDFirst+DefaultIDCount {
			t.Fatalf("uid %d is outside the pool's range", id)
		}
		starts[id] = true
		release()
		p.Close()
	}
	// Eight pools that each took the lowest free uid would all have taken
	// the same one; random starts collide with odds of about 2^-112.
	if len(starts) == 1 {
		t.Errorf("eight pools all started at uid %d: another host would take each uid as soon as it is freed", DefaultIDFirst)
	}
}

func TestSealInheritedFDs(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
		t.Fatal("the test descriptor is close-on-exec already")
	}
	if err := SealInheritedFDs(); err != nil {
		t.Fatal(err)
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Error("SealInheritedFDs left the descriptor inheritable")
	}
}

func TestProbe(t *testing.T) {
	needFixtures(t)
	r := Probe(context.Background())
	t.Logf("\n%s", r)
	var names []string
	for _, m := range r.Mechanisms {
		names = append(names, m.Name)
		if !m.Available && m.Reason == "" {
			t.Errorf("%s is unavailable without a reason", m.Name)
		}
	}
	if !slices.Equal(names, Protections()) {
		t.Errorf("Probe lists %v, want %v", names, Protections())
	}
	if os.Geteuid() == 0 {
		if m := r.Get(Landlock); m.Available && !strings.HasPrefix(m.Detail, "ABI ") {
			t.Errorf("Landlock detail %q does not give the ABI", m.Detail)
		}
	}
	leftover, _ := filepath.Glob("/sys/fs/cgroup/*/airlock/probe.*")
	if len(leftover) > 0 {
		t.Errorf("Probe left cgroups behind: %v", leftover)
	}
}

// TestPrepare_Unprivileged runs the test binary as an unprivileged user: a
// required cgroup protection is refused by name, and without Require the
// plugin runs with what such a host can apply, which Applied states.
func TestPrepare_Unprivileged(t *testing.T) {
	needFixtures(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to become another user")
	}
	self := filepath.Join(fixtureDir, "sandbox.test")
	if _, err := os.Stat(self); err != nil {
		copyFile(t, os.Args[0], self, 0o755)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=unprivileged", helperVictimEnv + "=" + fixtureDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: overflowID, Gid: overflowID}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unprivileged helper: %v\n%s", err, out)
	}
	var rep unprivilegedReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	t.Logf("unprivileged: %+v", rep)
	if !strings.Contains(rep.RequireErr, "cgroup_memory") || !strings.Contains(rep.RequireErr, "unavailable") {
		t.Errorf("Require cgroup_memory as an unprivileged host: %q, want an error naming it", rep.RequireErr)
	}
	if rep.RunErr != "" {
		t.Fatalf("the unprivileged run failed: %s", rep.RunErr)
	}
	for _, p := range []string{CgroupMemory, CgroupPids, CgroupCPU, CgroupKill} {
		if slices.Contains(rep.Applied, p) {
			t.Errorf("Applied claims %s on an unprivileged host: %v", p, rep.Applied)
		}
	}
	for _, p := range []string{Seccomp, NoNewPrivs, Rlimits} {
		if !slices.Contains(rep.Applied, p) {
			t.Errorf("Applied lacks %s, which needs no privilege: %v", p, rep.Applied)
		}
	}
	if !strings.Contains(rep.Output, `"mode":"ids"`) {
		t.Errorf("the plugin did not run: %q", rep.Output)
	}
}

type unprivilegedReport struct {
	RequireErr string   `json:"require_err"`
	RunErr     string   `json:"run_err"`
	Applied    []string `json:"applied"`
	Output     string   `json:"output"`
}

// runUnprivilegedHelper is the helper side of TestPrepare_Unprivileged.
func runUnprivilegedHelper() int {
	dir := os.Getenv(helperVictimEnv)
	var rep unprivilegedReport
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(rep) }()
	spec := Spec{Name: "unpriv", Dir: dir, Program: "victim", Require: []string{CgroupMemory}}
	if _, err := Prepare(context.Background(), exec.Command("victim"), spec, nil); err != nil {
		rep.RequireErr = err.Error()
	}
	spec.Require = nil
	cmd := exec.Command(filepath.Join(dir, "victim"), "ids")
	var out bytes.Buffer
	cmd.Stdout = &out
	s, err := Prepare(context.Background(), cmd, spec, nil)
	if err != nil {
		rep.RunErr = err.Error()
		return 0
	}
	defer s.Close()
	if err := cmd.Start(); err != nil {
		rep.RunErr = err.Error()
		return 0
	}
	if err := s.Started(); err != nil {
		rep.RunErr = fmt.Sprintf("Started: %v", err)
	}
	_ = cmd.Wait()
	rep.Applied = s.Applied()
	rep.Output = out.String()
	return 0
}

// TestStarted_LauncherFailure: a protection the launcher cannot apply
// stops the launch when it is required (the plugin never runs), and is
// reported missing when it is not.
func TestStarted_LauncherFailure(t *testing.T) {
	needFull(t)
	for _, required := range []bool{true, false} {
		t.Run(fmt.Sprintf("required=%v", required), func(t *testing.T) {
			cmd := exec.Command(victimPath, "true")
			var out bytes.Buffer
			cmd.Stdout = &out
			spec := Spec{Name: "broken", Dir: fixtureDir, Program: "victim", IDs: testIDs}
			if required {
				spec.Require = []string{MountNS}
			}
			s, err := Prepare(context.Background(), cmd, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A step the launcher cannot perform.
			s.msg.Mounts = append(s.msg.Mounts, launcher.MountOp{Kind: "bogus", Target: "/bogus"})
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			err = s.Started()
			_ = cmd.Wait()
			if required {
				var ue *UnavailableError
				if !errors.As(err, &ue) || ue.Protection != MountNS || !strings.Contains(ue.Reason, "bogus") {
					t.Fatalf("Started = %v, want UnavailableError for mountns naming the failed step", err)
				}
				if out.Len() != 0 {
					t.Errorf("the plugin ran although a required protection failed: %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Started = %v, want the launch to degrade", err)
			}
			if slices.Contains(s.Applied(), MountNS) {
				t.Errorf("Applied = %v claims mountns", s.Applied())
			}
			if m := s.Status().Get(MountNS); m.Available || !strings.Contains(m.Reason, "bogus") {
				t.Errorf("Status(mountns) = %+v, want missing with the reason", m)
			}
			if !strings.Contains(out.String(), `"mode":"true"`) {
				t.Errorf("the degraded plugin did not run: %q", out.String())
			}
		})
	}
}

// TestStarted_LauncherEnforcesRequire: the host releases the launcher
// before it reads the launcher's report, so the launcher itself must refuse
// to exec when a required protection of its own is not in place, even one
// it was never asked to apply.
func TestStarted_LauncherEnforcesRequire(t *testing.T) {
	needFull(t)
	for _, name := range []string{Seccomp, Landlock, MountNS} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(victimPath, "true")
			var out bytes.Buffer
			cmd.Stdout = &out
			spec := Spec{Name: "unasked", Dir: fixtureDir, Program: "victim", IDs: testIDs, Require: []string{name}}
			s, err := Prepare(context.Background(), cmd, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// As if the host had not asked for it.
			switch name {
			case Seccomp:
				s.msg.Seccomp = nil
			case Landlock:
				s.msg.Landlock = nil
			case MountNS:
				s.msg.Mounts = nil
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			err = s.Started()
			_ = cmd.Wait()
			var ue *UnavailableError
			if !errors.As(err, &ue) || ue.Protection != name {
				t.Fatalf("Started = %v, want UnavailableError for %s", err, name)
			}
			// The launcher's refusal gives its own reason; the host's
			// backstop (which finds it only after the exec) would not.
			if !strings.Contains(ue.Reason, "did not ask for it") || out.Len() != 0 {
				t.Errorf("the launcher did not refuse to exec without required %s: %v, output %q", name, err, out.String())
			}
		})
	}
}
