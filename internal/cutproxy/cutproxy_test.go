package cutproxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCutOnce(t *testing.T) {
	serverSawEnd := make(chan error, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := range 1000 {
			if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
				serverSawEnd <- err
				return
			}
			if err := rc.Flush(); err != nil {
				serverSawEnd <- err
				return
			}
			if i == 5 && r.URL.Path == "/wait" {
				<-r.Context().Done() // wait for the cut after the marker
				serverSawEnd <- r.Context().Err()
				return
			}
		}
		serverSawEnd <- nil
	}))
	defer srv.Close()
	p, err := New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.CutOnce("line 3\n")

	res, err := http.Get(p.URL() + "/wait")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error = %v, want io.ErrUnexpectedEOF", err)
	}
	if want := "line 0\nline 1\nline 2\nline 3\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	if err := <-serverSawEnd; err == nil {
		t.Error("the server did not see its client go")
	}
	<-p.Cuts
	if got, want := string(body), "line 0\nline 1\nline 2\nline 3\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}

	// Disarmed: the next request passes whole.
	res, err = http.Get(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err = io.ReadAll(res.Body)
	if err != nil || !strings.HasSuffix(string(body), "line 999\n") {
		t.Errorf("second request: %d bytes, %v", len(body), err)
	}
	if err := <-serverSawEnd; err != nil {
		t.Errorf("second request, server: %v", err)
	}
}
