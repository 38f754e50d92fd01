package attack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readFile reads path; Count is the bytes read and Detail their first line.
func readFile(path string) Result {
	var r Result
	b, err := os.ReadFile(path)
	if err != nil {
		r.failed(err)
		return r
	}
	r.Count = int64(len(b))
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if len(first) > 80 {
		first = first[:80]
	}
	r.Detail = string(first)
	return r
}

// readShadow reads args[0] (default /etc/shadow).
func readShadow(args []string) (Result, error) {
	path := "/etc/shadow"
	if len(args) > 0 && args[0] != "" {
		path = args[0]
	}
	return readFile(path), nil
}

// readHostEnviron reads /proc/<args[0]>/environ.
func readHostEnviron(args []string) (Result, error) {
	pid, err := argPID(args, 0)
	if err != nil {
		return Result{}, err
	}
	return readFile(fmt.Sprintf("/proc/%d/environ", pid)), nil
}

// writeOutside creates args[0] and writes to it. Count is the bytes written.
func writeOutside(args []string) (Result, error) {
	path, err := argString(args, 0, "the host path to write")
	if err != nil {
		return Result{}, err
	}
	var r Result
	msg := []byte("written by a contained plugin\n")
	if err := os.WriteFile(path, msg, 0o644); err != nil {
		r.failed(err)
		return r, nil
	}
	r.Count = int64(len(msg))
	return r, nil
}

// pathTraversal reads args[0] as given, relative to the working directory
// (the plugin folder): "../secret", "../../etc/passwd".
func pathTraversal(args []string) (Result, error) {
	rel, err := argString(args, 0, "a relative path that climbs out of the plugin folder")
	if err != nil {
		return Result{}, err
	}
	return readFile(rel), nil
}

// symlinkEscape makes a symlink in the writable directory args[0] that
// points at args[1], then reads through it.
func symlinkEscape(args []string) (Result, error) {
	dir, err := argString(args, 0, "a directory the plugin may write")
	if err != nil {
		return Result{}, err
	}
	target, err := argString(args, 1, "the host file the symlink points at")
	if err != nil {
		return Result{}, err
	}
	link := filepath.Join(dir, "airlock-escape-link")
	_ = os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		var r Result
		r.failed(err)
		r.Detail = "symlink: " + err.Error()
		return r, nil
	}
	return readFile(link), nil
}

// setuidExec runs args[0] (a setuid program; this victim's own binary with
// the setuid bit works) with the mode "ids" and compares the ids it reports
// with this process's. Count is 1 if the exec gained a uid or a capability.
func setuidExec(args []string) (Result, error) {
	prog, err := argString(args, 0, "the setuid program to run")
	if err != nil {
		return Result{}, err
	}
	var r Result
	out, err := exec.Command(prog, "ids").Output()
	if err != nil {
		r.failed(err)
		r.Detail = "run " + prog + ": " + err.Error()
		return r, nil
	}
	var child Result
	if err := json.Unmarshal(out, &child); err != nil {
		return r, fmt.Errorf("read the ids %s reported: %w", prog, err)
	}
	self, _ := ids(nil)
	r.Detail = "parent " + self.Detail + "; child " + child.Detail
	if child.Detail != self.Detail || !strings.Contains(child.Detail, "capeff=0000000000000000") {
		r.Count = 1
	}
	return r, nil
}

// ids reports the real/effective/saved uids and gids, the supplementary
// groups and the effective capabilities.
func ids([]string) (Result, error) {
	ru, eu, su := unix.Getresuid()
	rg, eg, sg := unix.Getresgid()
	groups, _ := unix.Getgroups()
	capEff := "unknown"
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		capEff = statusField(string(st), "CapEff")
	}
	return Result{Detail: fmt.Sprintf("uid=%d,%d,%d gid=%d,%d,%d groups=%v capeff=%s", ru, eu, su, rg, eg, sg, groups, capEff)}, nil
}

// devShmLeftover writes args[0] into /dev/shm and a System V shared memory
// segment with key args[1]; both would outlive the plugin on a shared
// machine. Count is the bytes that landed in /dev/shm; Detail says whether
// the segment was created.
func devShmLeftover(args []string) (Result, error) {
	name, err := argString(args, 0, "the /dev/shm file name")
	if err != nil {
		return Result{}, err
	}
	key, err := argInt(args, 1, 0)
	if err != nil {
		return Result{}, err
	}
	var r Result
	data := bytes.Repeat([]byte("leftover"), 512)
	if err := os.WriteFile(filepath.Join("/dev/shm", filepath.Base(name)), data, 0o644); err != nil {
		r.failed(err)
	} else {
		r.Count = int64(len(data))
	}
	if key != 0 {
		id, err := unix.SysvShmGet(int(key), 4096, unix.IPC_CREAT|0o600)
		if err != nil {
			r.Detail = "shmget: " + errnoName(err)
		} else {
			r.Detail = "shmget: created id " + strconv.Itoa(id)
		}
	}
	return r, nil
}

func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
