//go:build linux

package sandbox

import (
	"github.com/airlockhq/airlock/internal/testing/fixture"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/airlockhq/airlock/internal/sandbox/cgroup"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a small host program: with helperEnv set,
// TestMain runs runHelper instead of the tests.
const (
	helperEnv       = "AIRLOCK_SANDBOX_TEST_HELPER"
	helperVictimEnv = "AIRLOCK_SANDBOX_TEST_VICTIM_DIR"
	helperIDsEnv    = "AIRLOCK_SANDBOX_TEST_ID_DIR"
)

type helperReport struct {
	PID  int      `json:"pid"`
	UID  int      `json:"uid"`
	Dirs []string `json:"dirs"`
	Err  string   `json:"err,omitempty"`
}

// runHelper starts a sandboxed sleeper, prints where it is, and waits to be
// killed.
func runHelper() int {
	say := func(r helperReport) { _ = json.NewEncoder(os.Stdout).Encode(r) }
	ids, err := NewIDPool(0x7e100000, 4096, filepath.Join(os.Getenv(helperIDsEnv), "ids.lock"))
	if err != nil {
		say(helperReport{Err: err.Error()})
		return 1
	}
	dir := os.Getenv(helperVictimEnv)
	cmd := exec.Command(filepath.Join(dir, "victim"), "sleep")
	s, err := Prepare(context.Background(), cmd, Spec{Name: "sleeper", Instance: "orphaned", Dir: dir, Program: "victim", IDs: ids}, nil)
	if err != nil {
		say(helperReport{Err: err.Error()})
		return 1
	}
	if err := cmd.Start(); err != nil {
		say(helperReport{Err: err.Error()})
		return 1
	}
	if err := s.Started(); err != nil {
		say(helperReport{Err: err.Error()})
		return 1
	}
	var dirs []string
	if s.group != nil {
		dirs = s.group.Dirs()
	}
	say(helperReport{PID: cmd.Process.Pid, UID: s.UID(), Dirs: dirs})
	for {
		time.Sleep(time.Hour)
	}
}

// TestSandbox_DiesWithHost: SIGKILL the host; its plugin must die too, and
// the next host start removes the cgroups the dead one left.
func TestSandbox_DiesWithHost(t *testing.T) {
	needFull(t)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=1", helperVictimEnv+"="+fixtureDir, helperIDsEnv+"="+t.TempDir())
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = testWriter{t}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("read the helper host's report: %v", err)
	}
	var rep helperReport
	if err := json.Unmarshal(line, &rep); err != nil || rep.Err != "" || rep.PID == 0 {
		t.Fatalf("helper host: %s (%v)", line, err)
	}
	pidfd, err := unix.PidfdOpen(rep.PID, 0)
	if err != nil {
		t.Fatalf("pidfd_open the sleeper %d: %v", rep.PID, err)
	}
	defer unix.Close(pidfd)

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()

	// A pidfd turns readable when its process exits.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 10000)
	if err != nil || n != 1 {
		t.Fatalf("the sandboxed sleeper %d outlived its SIGKILLed host (poll: %d, %v)", rep.PID, n, err)
	}
	if pids := fixture.PIDsOfUID(rep.UID); len(pids) > 0 {
		t.Errorf("processes of the plugin's uid %d outlived the host: %v", rep.UID, pids)
	}

	// The dead host never closed its sandbox: its groups are still there
	// until a live host sweeps them.
	l, err := cgroup.Detect()
	if err != nil {
		t.Fatal(err)
	}
	removed, err := cgroup.Sweep(context.Background(), l, "airlock")
	if err != nil {
		t.Errorf("Sweep: %v", err)
	}
	t.Logf("swept %v", removed)
	for _, d := range rep.Dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s of the dead host survived the sweep", d)
		}
	}
}
