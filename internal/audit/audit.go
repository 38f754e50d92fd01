// Package audit is Airlock's append-only record of capability decisions:
// every policy decision made when a plugin is activated and every host call
// the broker refused is one JSON line in a file, and one slog record.
//
// # Crash safety
//
// Each record is encoded in full, bounded to MaxRecord bytes, and written
// with a single write(2) on a file opened O_APPEND, so a crash of the host
// process never leaves half a record followed by another: the kernel
// appends each write whole. A power cut can still cut the last write short;
// Open then finds a final line without its newline and ends it, and the
// reader skips (and counts) any line that is not a whole record.
//
// # Sync policy
//
// SyncEach (the default) calls fdatasync after every record, so a record
// that Write returned for survives a power cut. SyncNone leaves flushing to
// the kernel: records survive a crash of the process but the last seconds
// may be lost on power failure; choose it when refusals are frequent and the
// disk is slow. The broker rate-limits nothing here: every refusal is kept.
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxRecord is the largest encoded record, newline included. Longer reasons
// are cut and an oversized scope is dropped, marked by Truncated.
const MaxRecord = 8 << 10

// Decisions.
const (
	Granted  = "granted"  // activation: granted as requested
	Narrowed = "narrowed" // activation: granted, less than requested
	Denied   = "denied"   // activation: not granted
	Refused  = "refused"  // a host call the broker refused
)

// Record is one audit entry.
type Record struct {
	Time       time.Time       `json:"time"`
	Plugin     string          `json:"plugin"`
	Instance   string          `json:"instance,omitempty"`
	Capability string          `json:"capability,omitempty"`
	Function   string          `json:"function,omitempty"` // host calls only
	Scope      json.RawMessage `json:"scope,omitempty"`    // the grant, or the token's effective scope
	Decision   string          `json:"decision"`
	Code       string          `json:"code,omitempty"` // protocol error code of a refusal
	Reason     string          `json:"reason,omitempty"`
	TokenID    string          `json:"token_id,omitempty"`
	Truncated  bool            `json:"truncated,omitempty"`
}

// Denial reports whether the record is a denial or refusal.
func (r Record) Denial() bool { return r.Decision == Denied || r.Decision == Refused }

// SyncPolicy says when records reach the disk.
type SyncPolicy uint8

// The sync policies.
const (
	SyncEach SyncPolicy = iota // fdatasync after every record (default)
	SyncNone                   // leave it to the kernel
)

// Log appends records to a file. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	sync   SyncPolicy
	logger *slog.Logger
	now    func() time.Time
	closed bool
}

// Options configure Open. The zero value syncs every record and logs to
// nothing.
type Options struct {
	Sync   SyncPolicy
	Logger *slog.Logger // also receives one line per record; nil: none
	Now    func() time.Time
}

// Open opens (creating it 0600 if needed) the audit file at path for
// appending. If an earlier crash left a final line without its newline,
// Open ends that line so the next record starts clean; the reader skips the
// torn line.
func Open(path string, opts Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := endTornLine(f, path); err != nil {
		f.Close()
		return nil, err
	}
	l := &Log{f: f, sync: opts.Sync, logger: opts.Logger, now: opts.Now}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

func endTornLine(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	if st.Size() == 0 {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, st.Size()-1); err != nil {
		return fmt.Errorf("open audit log: read last byte: %w", err)
	}
	if last[0] != '\n' {
		if _, err := f.Write([]byte("\n")); err != nil {
			return fmt.Errorf("open audit log: end torn record: %w", err)
		}
	}
	return nil
}

// Write appends one record (Time defaults to now) in a single write and,
// under SyncEach, syncs it; it also logs the record through slog.
func (l *Log) Write(ctx context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = l.now()
	}
	r.Time = r.Time.UTC()
	line, err := Encode(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("write audit record: log is closed")
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	if l.sync == SyncEach {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("sync audit log: %w", err)
		}
	}
	if l.logger != nil {
		level := slog.LevelInfo
		if r.Denial() {
			level = slog.LevelWarn
		}
		l.logger.LogAttrs(ctx, level, "audit",
			slog.String("plugin", r.Plugin), slog.String("instance", r.Instance),
			slog.String("capability", r.Capability), slog.String("function", r.Function),
			slog.String("decision", r.Decision), slog.String("code", r.Code),
			slog.String("reason", r.Reason), slog.String("token_id", r.TokenID))
	}
	return nil
}

// Close syncs and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	serr := l.f.Sync()
	cerr := l.f.Close()
	if cerr != nil {
		return fmt.Errorf("close audit log: %w", cerr)
	}
	if serr != nil {
		return fmt.Errorf("sync audit log: %w", serr)
	}
	return nil
}

// Encode returns r as one JSON line of at most MaxRecord bytes. Text fields
// come from plugins and are untrusted: JSON escaping keeps them on one line,
// and oversized ones are cut.
func Encode(r Record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	for n := 1024; len(b)+1 > MaxRecord; n /= 2 {
		r.Truncated = true
		r.Scope = nil
		for _, s := range []*string{&r.Reason, &r.Function, &r.Capability, &r.Instance, &r.Plugin, &r.TokenID, &r.Code, &r.Decision} {
			*s = cut(*s, n)
		}
		if b, err = json.Marshal(r); err != nil {
			return nil, fmt.Errorf("encode audit record: %w", err)
		}
	}
	return append(b, '\n'), nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Filter selects records when reading.
type Filter struct {
	Plugin string // "" for every plugin
	Denied bool   // only denials and refusals
}

func (f Filter) match(r Record) bool {
	return (f.Plugin == "" || r.Plugin == f.Plugin) && (!f.Denied || r.Denial())
}

// Result is what Read found.
type Result struct {
	Records []Record
	// Skipped counts lines that were not whole records: torn by a crash,
	// or damaged. Each is skipped, never guessed at.
	Skipped int
}

// Read reads records from r, keeping those f selects.
func Read(r io.Reader, f Filter) (Result, error) {
	var res Result
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any record can be: skip to the next newline.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			res.Skipped++
			if errors.Is(err, io.EOF) {
				return res, nil
			}
			if err != nil {
				return res, fmt.Errorf("read audit log: %w", err)
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				res.Skipped++ // final line without newline: a torn write
			}
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read audit log: %w", err)
		}
		var rec Record
		if len(line) <= 1 {
			continue
		}
		if json.Unmarshal(line, &rec) != nil || rec.Decision == "" || rec.Time.IsZero() {
			res.Skipped++
			continue
		}
		if f.match(rec) {
			res.Records = append(res.Records, rec)
		}
	}
}

// ReadFile reads the audit file at path.
func ReadFile(path string, f Filter) (Result, error) {
	file, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("read audit log: %w", err)
	}
	defer file.Close()
	return Read(file, f)
}
