package stream

import (
	"errors"
	"net/http"
	"testing"
)

func TestOnOwnStack(t *testing.T) {
	if got := onOwnStack(func() int { return 42 }); got != 42 {
		t.Fatalf("got %d, want 42", got)
	}
	// A panic reaches the caller's goroutine, where net/http's and Gin's
	// recovery can see it: http.ErrAbortHandler must stay itself.
	for name, value := range map[string]any{"abort handler": http.ErrAbortHandler, "string": "boom"} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				p := recover()
				if err, ok := value.(error); ok {
					if e, _ := p.(error); !errors.Is(e, err) {
						t.Fatalf("recovered %v, want %v", p, value)
					}
				} else if p != value {
					t.Fatalf("recovered %v, want %v", p, value)
				}
			}()
			onOwnStack(func() int { panic(value) })
			t.Fatal("onOwnStack returned")
		})
	}
}
