package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("AUDIT_TEST_WRITER") != "" {
		crashWriter(os.Getenv("AUDIT_TEST_WRITER"))
		return
	}
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func open(t *testing.T, path string, opts Options) *Log {
	t.Helper()
	l, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLog_WriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var logBuf bytes.Buffer
	l := open(t, path, Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, nil)), Now: func() time.Time { return t0 }})
	ctx := context.Background()
	recs := []Record{
		{Plugin: "weather", Instance: "i-1", Capability: "kv", Decision: Granted, Scope: json.RawMessage(`{"quota":1024}`)},
		{Plugin: "weather", Instance: "i-1", Capability: "http", Decision: Narrowed, Reason: `http: host "evil.com" not in policy allowlist for plugin "weather"`},
		{Plugin: "weather", Instance: "i-1", Capability: "fs.write", Decision: Denied, Reason: "denied"},
		{Plugin: "other", Instance: "i-9", Capability: "kv", Function: "kv.put", Decision: Refused, Code: "budget_exceeded", TokenID: "abcd"},
	}
	for _, r := range recs {
		if err := l.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    Filter
		want int
	}{
		{Filter{}, 4}, {Filter{Plugin: "weather"}, 3}, {Filter{Denied: true}, 2}, {Filter{Plugin: "weather", Denied: true}, 1}, {Filter{Plugin: "nobody"}, 0},
	}
	for _, tt := range tests {
		res, err := ReadFile(path, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != tt.want || res.Skipped != 0 {
			t.Errorf("filter %+v: %d records (%d skipped), want %d", tt.f, len(res.Records), res.Skipped, tt.want)
		}
	}
	res, _ := ReadFile(path, Filter{})
	got := res.Records[3]
	if !got.Time.Equal(t0) || got.Code != "budget_exceeded" || got.TokenID != "abcd" || got.Function != "kv.put" {
		t.Errorf("record read back = %+v", got)
	}
	if string(res.Records[0].Scope) != `{"quota":1024}` {
		t.Errorf("scope = %s", res.Records[0].Scope)
	}
	if n := strings.Count(logBuf.String(), `"msg":"audit"`); n != 4 {
		t.Errorf("slog lines = %d, want 4:\n%s", n, logBuf.String())
	}
	if !strings.Contains(logBuf.String(), `"level":"WARN"`) {
		t.Error("denials should log at WARN")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", st.Mode().Perm())
	}
	if err := l.Write(ctx, recs[0]); err == nil {
		t.Error("write after close succeeded")
	}
}

func TestLog_TornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := open(t, path, Options{})
	ctx := context.Background()
	if err := l.Write(ctx, Record{Plugin: "p", Decision: Denied, Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// Simulate a write cut short by a power failure.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time":"2030-01-02T03:04:05Z","plugin":"p","decis`)
	f.Close()

	res, err := ReadFile(path, Filter{})
	if err != nil || len(res.Records) != 1 || res.Skipped != 1 {
		t.Fatalf("before reopen: %+v, %v", res, err)
	}
	l2 := open(t, path, Options{})
	if err := l2.Write(ctx, Record{Plugin: "p", Decision: Refused, Reason: "after crash"}); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	res, err = ReadFile(path, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 2 || res.Skipped != 1 || res.Records[1].Reason != "after crash" {
		t.Errorf("after reopen: %d records, %d skipped: %+v", len(res.Records), res.Skipped, res.Records)
	}
}

func TestEncode_Bounded(t *testing.T) {
	huge := strings.Repeat("\x00é<", 50_000)
	line, err := Encode(Record{Time: t0, Plugin: huge, Reason: huge, Function: huge, Decision: Refused, Scope: json.RawMessage(`"` + strings.Repeat("x", 20000) + `"`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(line) > MaxRecord || bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("record of %d bytes, %d newlines", len(line), bytes.Count(line, []byte("\n")))
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil || !r.Truncated || r.Scope != nil {
		t.Errorf("truncated record = %+v, %v", r, err)
	}
}

func TestRead_SkipsGarbage(t *testing.T) {
	good, _ := Encode(Record{Time: t0, Plugin: "p", Decision: Denied})
	in := bytes.Join([][]byte{good, []byte("not json\n"), []byte("{}\n"), bytes.Repeat([]byte("x"), 200_000), []byte("\n"), good}, nil)
	res, err := Read(bytes.NewReader(in), Filter{})
	if err != nil || len(res.Records) != 2 || res.Skipped != 3 {
		t.Errorf("got %d records, %d skipped, %v", len(res.Records), res.Skipped, err)
	}
}

// TestLog_ConcurrentWriters: many goroutines write at once; every line read
// back is one whole record.
func TestLog_ConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := open(t, path, Options{Sync: SyncNone})
	var wg sync.WaitGroup
	const writers, each = 8, 200
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Write(context.Background(), Record{Plugin: fmt.Sprintf("p%d", w), Decision: Refused, Reason: strings.Repeat("r", i*10)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	res, err := ReadFile(path, Filter{})
	if err != nil || len(res.Records) != writers*each || res.Skipped != 0 {
		t.Errorf("%d records, %d skipped, %v", len(res.Records), res.Skipped, err)
	}
}

// crashWriter runs in a child process: it appends records as fast as it
// can until it is killed.
func crashWriter(path string) {
	l, err := Open(path, Options{Sync: SyncNone})
	if err != nil {
		os.Exit(2)
	}
	os.Stdout.WriteString("ready\n")
	for i := 0; ; i++ {
		l.Write(context.Background(), Record{Plugin: "crash", Decision: Refused, Reason: strings.Repeat("z", i%3000)})
	}
}

// TestLog_KilledWriterLeavesWholeRecords kills a writing process with
// SIGKILL mid-stream, several times; every line in the file is whole.
func TestLog_KilledWriterLeavesWholeRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AUDIT_TEST_WRITER="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("round %d: child did not start: %v", round, err)
		}
		// Let it write until the file has grown, then kill it.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if st, err := os.Stat(path); err == nil && st.Size() > int64(round+1)*256<<10 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	res, err := ReadFile(path, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 0 || len(res.Records) == 0 {
		t.Errorf("after 3 kills: %d records, %d torn", len(res.Records), res.Skipped)
	}
	t.Logf("%d whole records after 3 SIGKILLs", len(res.Records))
}

func BenchmarkWrite(b *testing.B) {
	for _, sp := range []struct {
		name string
		p    SyncPolicy
	}{{"SyncEach", SyncEach}, {"SyncNone", SyncNone}} {
		b.Run(sp.name, func(b *testing.B) {
			l, err := Open(filepath.Join(b.TempDir(), "a.jsonl"), Options{Sync: sp.p})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			r := Record{Plugin: "weather", Instance: "i-1", Capability: "http", Function: "http.fetch", Decision: Refused, Code: "permission_denied", Reason: `host "evil.com" is not in the token's allowlist`}
			for b.Loop() {
				if err := l.Write(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
