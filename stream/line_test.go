package stream

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAppendLine(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":              {"hello", "hello\n"},
		"empty":              {"", "\n"},
		"newline":            {"a\nb", "a<br />b\n"},
		"only newline":       {"\n", "<br />\n"},
		"crlf is one break":  {"a\r\nb", "a<br />b\n"},
		"lone cr":            {"a\rb", "a<br />b\n"},
		"cr cr lf":           {"a\r\r\nb", "a<br /><br />b\n"},
		"lf cr":              {"a\n\rb", "a<br /><br />b\n"},
		"trailing crlf":      {"end.\r\n", "end.<br />\n"},
		"paragraph":          {"\n\n", "<br /><br />\n"},
		"multi-byte":         {"café 你好 🚀\n", "café 你好 🚀<br />\n"},
		"break text as is":   {"a<br />b", "a<br />b\n"},
		"spaces kept":        {"  x  ", "  x  \n"},
		"markdown list":      {"- one\n- two", "- one<br />- two\n"},
		"cr at end of delta": {"x\r", "x<br />\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := string(AppendLine(nil, tt.in)); got != tt.want {
				t.Errorf("AppendLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendLineAppends(t *testing.T) {
	buf := AppendLine([]byte("first\n"), "second\nline")
	if got, want := string(buf), "first\nsecond<br />line\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendLineDoesNotAllocateWithRoom(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendLine(buf[:0], "a delta\r\nwith breaks\n")
	})
	if allocs != 0 {
		t.Errorf("AppendLine allocated %v times per call, want 0", allocs)
	}
}

// body is a relay body that has every awkward byte in it.
const body = "Hello\n wörld<br />\n\n 你好\n 🚀<br /><br />end\n"

var bodyDeltas = []string{"Hello", " wörld\n", " 你好", " 🚀\n\nend"}

func TestLineReader(t *testing.T) {
	tests := map[string]struct {
		body string
		want []string
	}{
		"deltas":                  {body, bodyDeltas},
		"empty body":              {"", nil},
		"only empty lines":        {"\n\n\n", nil},
		"last line without lf":    {"a\nb", []string{"a", "b"}},
		"break restores lf":       {"<br />\n", []string{"\n"}},
		"long line":               {strings.Repeat("x", 200_000) + "\n", []string{strings.Repeat("x", 200_000)}},
		"empty lines are skipped": {"\na\n\nb\n\n", []string{"a", "b"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := readDeltas(strings.NewReader(tt.body))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !equal(got, tt.want) {
				t.Errorf("deltas = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLineReaderSplits feeds the body cut into two reads at every byte,
// including inside multi-byte characters and inside "<br />".
func TestLineReaderSplits(t *testing.T) {
	for i := 0; i <= len(body); i++ {
		r := io.MultiReader(strings.NewReader(body[:i]), strings.NewReader(body[i:]))
		got, err := readDeltas(r)
		if err != nil || !equal(got, bodyDeltas) {
			t.Fatalf("split at %d: deltas = %q, err = %v; want %q", i, got, err, bodyDeltas)
		}
	}
	got, err := readDeltas(iotest.OneByteReader(strings.NewReader(body)))
	if err != nil || !equal(got, bodyDeltas) {
		t.Fatalf("one byte at a time: deltas = %q, err = %v", got, err)
	}
}

func TestLineReaderAbruptEnd(t *testing.T) {
	r := io.MultiReader(strings.NewReader("one\ntw"), iotest.ErrReader(io.ErrUnexpectedEOF))
	lr := NewLineReader(r)
	var got []string
	for lr.Next() {
		got = append(got, lr.Text())
	}
	if !equal(got, []string{"one"}) {
		t.Errorf("deltas = %q, want [one]", got)
	}
	if !errors.Is(lr.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("Err() = %v, want io.ErrUnexpectedEOF", lr.Err())
	}
}

func TestReadAll(t *testing.T) {
	got, err := ReadAll(strings.NewReader(body))
	if want := strings.Join(bodyDeltas, ""); got != want || err != nil {
		t.Errorf("ReadAll = %q, %v; want %q, nil", got, err, want)
	}
}

// FuzzLine checks that an encoded line holds no line break but its last
// byte, and that decoding it gives back the text with every "\r\n" and "\r"
// turned into "\n" (text containing Break itself is the format's known limit).
func FuzzLine(f *testing.F) {
	for _, s := range []string{"", "a", "\n", "\r\n", "\r", "a\r\r\nb", "café 🚀\n", "<br", "x\n\ry"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line := AppendLine(nil, s)
		if line[len(line)-1] != '\n' {
			t.Fatalf("line %q does not end in \\n", line)
		}
		if i := strings.IndexAny(string(line[:len(line)-1]), "\r\n"); i >= 0 {
			t.Fatalf("line %q has a line break at %d", line, i)
		}
		if strings.Contains(s, Break) {
			return
		}
		want := strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
		if got := DecodeLine(string(line[:len(line)-1])); got != want {
			t.Fatalf("DecodeLine(AppendLine(%q)) = %q, want %q", s, got, want)
		}
	})
}

func readDeltas(r io.Reader) ([]string, error) {
	var out []string
	lr := NewLineReader(r)
	for lr.Next() {
		out = append(out, lr.Text())
	}
	return out, lr.Err()
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
