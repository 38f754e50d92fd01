package system

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	specs := []Spec{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	tests := []struct {
		list    string
		want    string
		wantErr string
	}{
		{"", "a,b,c", ""},
		{"c, a", "a,c", ""},
		{"b,,b", "b", ""},
		{"a,zz", "", `unknown system "zz": choose from a, b, c`},
	}
	for _, tt := range tests {
		got, err := Select(specs, tt.list)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Select(%q) error = %v, want %q", tt.list, err, tt.wantErr)
			}
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if err != nil || strings.Join(names, ",") != tt.want {
			t.Errorf("Select(%q) = %v, %v; want %s", tt.list, names, err, tt.want)
		}
	}
}

func TestRole_JSONRoundTrip(t *testing.T) {
	for _, r := range []Role{RoleFloor, RoleComparison, RoleCandidate} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Role
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Errorf("role %v → %s → %v, %v", r, b, back, err)
		}
	}
	var r Role
	if err := json.Unmarshal([]byte(`"boss"`), &r); err == nil {
		t.Error("an unknown role name decoded without error")
	}
}
