package main

import "testing"

// listing is a goroutine?debug=1 listing in the shape the server's pprof
// serves: two idle upstream connections (a read and a write loop each),
// and other goroutines.
const listing = `goroutine profile: total 9
2 @ 0x48c0ce 0x4684e5 0x787ce6 0x493e01
#	0x787ce5	net/http.(*persistConn).readLoop+0x1b45	/usr/local/go/src/net/http/transport.go:2395

2 @ 0x48c0ce 0x4684e5 0x786dc5 0x493e01
#	0x786dc4	net/http.(*persistConn).writeLoop+0xe4	/usr/local/go/src/net/http/transport.go:2597

4 @ 0x48c0ce 0x44d837 0x48b2a5
#	0x4ed766	internal/poll.(*pollDesc).wait+0x26	/usr/local/go/src/internal/poll/fd_poll_runtime.go:84

1 @ 0x493e01
#	0x789bb2	main.main+0x1f2	/src/main.go:10
`

func TestCountGoroutines(t *testing.T) {
	tests := map[string]struct {
		listing string
		pooled  bool
		want    int
		wantErr bool
	}{
		"all":                          {listing, true, 9, false},
		"without pooled connections":   {listing, false, 5, false},
		"not a listing":                {"404 page not found", false, 0, true},
		"no pooled connections at all": {"goroutine profile: total 3\n3 @ 0x1\n#\t0x1\tmain.main\n", false, 3, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := countGoroutines(tt.listing, tt.pooled)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("countGoroutines = %d, %v; want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
