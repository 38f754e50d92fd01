package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Digest returns the lowercase hex SHA-256 of the file at path, the form
// entry.sha256 takes.
//
// Only a regular file is read (a FIFO would block forever).
func Digest(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("digest entry program: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("digest entry program: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("digest entry program: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("digest entry program: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SetSHA256InFile sets entry.sha256 in the manifest at path to digest,
// changing only that value so comments and layout survive. If the key is
// missing it is added as the last key of [entry] (or of the entry.* dotted
// keys, or in a new [entry] table at the end). The file is replaced
// atomically and keeps its permissions.
func SetSHA256InFile(path, digest string) error {
	if !sha256RE.MatchString(digest) {
		return fmt.Errorf("set sha256 in %s: %q is not 64 lowercase hex digits", path, digest)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("set sha256: %w", err)
	}
	if _, err := Parse(data); err != nil {
		return fmt.Errorf("set sha256 in %s: %w", path, err)
	}
	out, err := setSHA256(data, digest)
	if err != nil {
		return fmt.Errorf("set sha256 in %s: %w", path, err)
	}
	return writeFileAtomic(path, out)
}

// setSHA256 returns data with entry.sha256 set to digest.
func setSHA256(data []byte, digest string) ([]byte, error) {
	value := []byte(strconv.Quote(digest))
	var p unstable.Parser
	p.Reset(data)

	var (
		table    []string // keys of the current [table] header
		entryHdr = -1     // offset just after the [entry] header line
		insertAt = -1     // offset just after the last entry key-value
		dotted   bool     // that key-value is a root dotted key ("entry.program = ...")
		indent   []byte   // and its indentation
	)
	for p.NextExpression() {
		e := p.Expression()
		keys := keyParts(e)
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keys
			if e.Kind == unstable.Table && len(keys) == 1 && keys[0] == "entry" {
				it := e.Key()
				it.Next()
				entryHdr = lineEnd(data, int(it.Node().Raw.Offset))
			}
		case unstable.KeyValue:
			full := append(slices.Clone(table), keys...)
			if full[0] != "entry" {
				continue
			}
			v := e.Value()
			if len(full) == 1 { // entry = { ... }
				v = inlineValue(v, "sha256")
				if v == nil {
					return nil, errors.New("entry is an inline table; add sha256 to it by hand, or make [entry] a table")
				}
			}
			if len(full) == 1 || len(full) == 2 && full[1] == "sha256" {
				r := v.Raw
				return slices.Concat(data[:r.Offset], value, data[r.Offset+r.Length:]), nil
			}
			start := int(e.Raw.Offset)
			insertAt = lineEnd(data, start+int(e.Raw.Length))
			dotted = len(table) == 0
			indent = data[lineStart(data, start):start]
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	nl := []byte("\n")
	if bytes.Contains(data, []byte("\r\n")) {
		nl = []byte("\r\n")
	}
	line := func(key string) []byte {
		return slices.Concat(indent, []byte(key+" = "), value, nl)
	}
	var at int
	var insert []byte
	switch {
	case insertAt >= 0 && dotted:
		at, insert = insertAt, line("entry.sha256")
	case insertAt >= 0:
		at, insert = insertAt, line("sha256")
	case entryHdr >= 0:
		at, insert = entryHdr, line("sha256")
	default:
		at, insert = len(data), slices.Concat(nl, []byte("[entry]"), nl, line("sha256"))
		if len(data) == 0 {
			insert = insert[len(nl):]
		}
	}
	if at > 0 && data[at-1] != '\n' {
		insert = slices.Concat(nl, insert)
	}
	return slices.Concat(data[:at], insert, data[at:]), nil
}

// inlineValue returns the value of key in the inline table t, or nil.
func inlineValue(t *unstable.Node, key string) *unstable.Node {
	for it := t.Children(); it.Next(); {
		kv := it.Node()
		if k := keyParts(kv); len(k) == 1 && k[0] == key {
			return kv.Value()
		}
	}
	return nil
}

// keyParts returns the key of a table header or key-value expression.
func keyParts(e *unstable.Node) []string {
	var keys []string
	for it := e.Key(); it.Next(); {
		keys = append(keys, string(it.Node().Data))
	}
	return keys
}

// lineStart returns the offset of the start of the line holding offset.
func lineStart(data []byte, offset int) int {
	return bytes.LastIndexByte(data[:offset], '\n') + 1
}

// lineEnd returns the offset just past the newline ending the line that
// holds offset, or len(data).
func lineEnd(data []byte, offset int) int {
	if i := bytes.IndexByte(data[offset:], '\n'); i >= 0 {
		return offset + i + 1
	}
	return len(data)
}

// writeFileAtomic replaces path with data through a temporary file in the
// same folder, keeping path's permissions.
func writeFileAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("set sha256: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("set sha256: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("set sha256: %w", err)
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("set sha256: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("set sha256: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("set sha256: %w", err)
	}
	return nil
}
