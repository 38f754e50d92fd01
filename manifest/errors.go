package manifest

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is every problem found in one manifest. Parse, Load and Validate
// return it (as error); match it with errors.As.
type Error struct {
	File     string // the manifest's path as given, or FileName
	Problems []Problem
}

// Problem is one thing wrong with a manifest.
type Problem struct {
	// Field is the dotted TOML path of the key at fault, such as
	// "functions.render.timeout"; keys that are not bare TOML keys are quoted
	// (`capabilities."fs.read".paths`). It is empty for a TOML syntax error.
	Field string
	// Line and Column locate the key in the file, counting from 1; they are 0
	// when unknown (a manifest built in Go, or a required key that is absent
	// and has no enclosing table in the file).
	Line, Column int
	Message      string
	// Fix says how to correct the problem; it may be empty.
	Fix string
}

// Error prints one problem a line, as FILE:LINE:COLUMN: FIELD: MESSAGE (fix: FIX).
func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = FileName
	}
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(file)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
			if p.Column > 0 {
				b.WriteString(":" + strconv.Itoa(p.Column))
			}
		}
		b.WriteString(": ")
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
		if p.Fix != "" {
			b.WriteString(" (fix: " + p.Fix + ")")
		}
	}
	return b.String()
}

// errorOf returns nil for no problems, else an *Error with the problems in
// file order (problems without a line first, in the order they were found).
func errorOf(file string, problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	problems = slices.Clone(problems)
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Error{File: file, Problems: problems}
}

// child returns the dotted path of key inside the table at parent, quoting
// key unless it is a bare TOML key.
func child(parent, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// elem returns the path of element i of the array at parent.
func elem(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func isBareKey(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}
