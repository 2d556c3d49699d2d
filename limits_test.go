package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// pythonRequests returns a python3 that has the requests library, skipping
// the test without one, or failing it under CI.
func pythonRequests(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import requests").Run()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 with requests not found: CI must install it (apt-get install -y python3-requests)")
		}
		t.Skip("python3 with requests not found: install it to run this test (apt-get install -y python3-requests)")
	}
	return py
}

// postScript posts {"prompt": char * n} with requests' json=, which escapes
// every non-ASCII character as \uXXXX (a surrogate pair beyond the BMP),
// and prints the body's size, the status and the answer.
const postScript = `
import json, sys, requests
url, char, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = requests.post(url, json={"prompt": char * n}, timeout=60)
print(json.dumps({"sent": len(r.request.body), "status": r.status_code, "body": r.text[:300]}))
`

// TestEscapedInputFitsBodyLimit checks that the default limits agree: the
// most characters MAX_INPUT_CHARS allows, sent by Python's requests with
// its \uXXXX escaping, fit the default body limit, and one more gets
// input_too_long, not 413.
func TestEscapedInputFitsBodyLimit(t *testing.T) {
	py := pythonRequests(t)
	a := launch(t, map[string]string{"DEMO_DELAY": "0s"})
	tests := map[string]struct {
		char     string
		n        int
		status   int
		minBytes int // what the escaped body must at least take
		code     string
	}{
		"32000 CJK":             {"中", 32000, 200, 32000 * 6, ""},
		"32001 CJK":             {"中", 32001, 400, 32001 * 6, "input_too_long"},
		"32000 beyond the BMP":  {"😀", 32000, 200, 32000 * 12, ""},
		"32001 beyond the BMP":  {"😀", 32001, 400, 32001 * 12, "input_too_long"},
		"32000 control escapes": {"\x01", 32000, 200, 32000 * 6, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(py, "-c", postScript, a.url+"/message/stream", tt.char, strconv.Itoa(tt.n)).Output()
			if err != nil {
				t.Fatalf("python: %v\n%s", err, out)
			}
			var got struct {
				Sent, Status int
				Body         string
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("python said %q: %v", out, err)
			}
			if got.Sent < tt.minBytes {
				t.Fatalf("requests sent %d bytes, want at least %d: it did not escape", got.Sent, tt.minBytes)
			}
			if got.Status != tt.status || tt.code != "" && !strings.Contains(got.Body, `"code":"`+tt.code+`"`) {
				t.Errorf("%d bytes: status %d, %s; want %d %s", got.Sent, got.Status, got.Body, tt.status, tt.code)
			}
		})
	}
}

// TestNginxConfMatchesBodyLimit checks that the shipped nginx.conf's
// client_max_body_size, wherever it is set, is the app's default body
// limit.
func TestNginxConfMatchesBodyLimit(t *testing.T) {
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	sizes := regexp.MustCompile(`client_max_body_size\s+(\d+)([kKmM]?);`).FindAllStringSubmatch(string(conf), -1)
	if len(sizes) == 0 {
		t.Fatal("nginx.conf sets no client_max_body_size")
	}
	want := config{}.withDefaults().MaxBodyBytes
	for _, m := range sizes {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		n <<= map[string]int{"": 0, "k": 10, "K": 10, "m": 20, "M": 20}[m[2]]
		if n != want {
			t.Errorf("nginx.conf: %s is %d bytes; the app's default MAX_BODY_BYTES is %d", m[0], n, want)
		}
	}
}
