package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	oldDigest = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	newDigest = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
)

func TestSetSHA256InFile(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "replaces the value, keeps comments",
			in: "# my plugin\nname = \"p\"\n\n[entry]   # the program\nprogram = \"bin/p\"\n" +
				"sha256   =   \"" + oldDigest + "\"  # set by airlock build\n\n[functions.run]\n",
			want: "# my plugin\nname = \"p\"\n\n[entry]   # the program\nprogram = \"bin/p\"\n" +
				"sha256   =   \"" + newDigest + "\"  # set by airlock build\n\n[functions.run]\n",
		},
		{
			name: "replaces a literal string",
			in:   "[entry]\nsha256 = 'abc'\n",
			want: "[entry]\nsha256 = \"" + newDigest + "\"\n",
		},
		{
			name: "adds after the last key of [entry], with its indentation",
			in:   "[entry]\n  program = \"bin/p\"\n  args = [\n    \"-v\",\n  ] # flags\n\n[functions.run]\n",
			want: "[entry]\n  program = \"bin/p\"\n  args = [\n    \"-v\",\n  ] # flags\n  sha256 = \"" + newDigest + "\"\n\n[functions.run]\n",
		},
		{
			name: "adds under an empty [entry]",
			in:   "name = \"p\"\n[entry]\n[functions.run]\n",
			want: "name = \"p\"\n[entry]\nsha256 = \"" + newDigest + "\"\n[functions.run]\n",
		},
		{
			name: "adds under [entry] at the end of a file without a newline",
			in:   "[entry]",
			want: "[entry]\nsha256 = \"" + newDigest + "\"\n",
		},
		{
			name: "adds a dotted key after dotted entry keys",
			in:   "name = \"p\"\nentry.program = \"bin/p\"\nversion = \"1.0.0\"\n",
			want: "name = \"p\"\nentry.program = \"bin/p\"\nentry.sha256 = \"" + newDigest + "\"\nversion = \"1.0.0\"\n",
		},
		{
			name: "replaces a dotted key",
			in:   "entry.sha256 = \"" + oldDigest + "\"\n",
			want: "entry.sha256 = \"" + newDigest + "\"\n",
		},
		{
			name: "replaces inside an inline table",
			in:   "entry = { program = \"p\", sha256 = \"" + oldDigest + "\" }\n",
			want: "entry = { program = \"p\", sha256 = \"" + newDigest + "\" }\n",
		},
		{
			name: "adds an [entry] table when there is none",
			in:   "name = \"p\"\n\n[functions.run]",
			want: "name = \"p\"\n\n[functions.run]\n\n[entry]\nsha256 = \"" + newDigest + "\"\n",
		},
		{
			name: "empty file",
			in:   "",
			want: "[entry]\nsha256 = \"" + newDigest + "\"\n",
		},
		{
			name: "keeps CRLF line endings",
			in:   "[entry]\r\nprogram = \"bin/p\"\r\n",
			want: "[entry]\r\nprogram = \"bin/p\"\r\nsha256 = \"" + newDigest + "\"\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(tt.in), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := SetSHA256InFile(path, newDigest); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			m, err := Parse(got)
			if err != nil || m.Entry.SHA256 != newDigest {
				t.Fatalf("result does not parse to the new digest: %v", err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode changed to %v", fi.Mode().Perm())
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("temporary file left behind: %v", entries)
			}
		})
	}
}

func TestSetSHA256InFile_Errors(t *testing.T) {
	tests := []struct {
		name, in, digest, wantErr string
	}{
		{"bad digest", "[entry]\n", "ABC", `"ABC" is not 64 lowercase hex digits`},
		{"inline table without the key", "entry = { program = \"p\" }\n", newDigest, "entry is an inline table"},
		{"file does not parse", "[entry\n", newDigest, "TOML syntax"},
		{"unknown key", "[entry]\nsha = 1\n", newDigest, "entry.sha: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			os.WriteFile(path, []byte(tt.in), 0o644)
			checkErr(t, SetSHA256InFile(path, tt.digest), tt.wantErr)
			if got, _ := os.ReadFile(path); string(got) != tt.in {
				t.Errorf("file changed on error:\n%s", got)
			}
		})
	}
	if err := SetSHA256InFile(filepath.Join(t.TempDir(), "none.toml"), newDigest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	os.WriteFile(path, []byte("foo"), 0o755)
	got, err := Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	// sha256("foo"), as printed by `printf foo | sha256sum`.
	if got != oldDigest {
		t.Errorf("Digest = %s, want %s", got, oldDigest)
	}
	if _, err := Digest(path + ".missing"); err == nil || !strings.Contains(err.Error(), "digest entry program") {
		t.Errorf("missing file: got %v", err)
	}
}
