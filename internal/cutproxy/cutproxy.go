// Package cutproxy is a TCP proxy for tests that drops a connection in the
// middle of a response, the way a train entering a tunnel does: the client
// gets the bytes up to the cut and then the end of the connection, and the
// server sees its client go.
package cutproxy

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from a loopback port to a target.
type Proxy struct {
	ln     net.Listener
	target string
	// Cuts receives once for every connection the proxy cut.
	Cuts chan struct{}

	mu     sync.Mutex
	marker []byte // cut the first response that carries it; nil: none armed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New starts a proxy on 127.0.0.1 to target ("host:port"). Close it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, Cuts: make(chan struct{}, 16), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr returns the proxy's "host:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns "http://" and the proxy's address.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// CutOnce arms a cut: the first connection whose bytes from the server
// then carry marker gets them up to the marker's end, and then both sides
// of it are closed. Later connections pass through untouched.
func (p *Proxy) CutOnce(marker string) {
	p.mu.Lock()
	p.marker = []byte(marker)
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(server, client)
			server.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(client, server)
		}()
	}
}

// track notes a pair of connections, unless the proxy is closing.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies the server's bytes to the client until the armed marker
// passes, then cuts both.
func (p *Proxy) pipe(client, server net.Conn) {
	defer func() {
		client.Close()
		server.Close()
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	var tail []byte // the last bytes seen, for a marker split across reads
	for {
		n, err := server.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if end, ok := p.match(&tail, chunk); ok {
				client.Write(chunk[:end])
				p.Cuts <- struct{}{}
				return
			}
			if _, werr := client.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			client.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

// match looks for the armed marker in tail+chunk. It returns where in chunk
// the marker ends, and disarms it, when it is there.
func (p *Proxy) match(tail *[]byte, chunk []byte) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil {
		return 0, false
	}
	seen := append(*tail, chunk...)
	i := bytes.Index(seen, p.marker)
	if i < 0 {
		keep := min(len(seen), len(p.marker)-1)
		*tail = append((*tail)[:0], seen[len(seen)-keep:]...)
		return 0, false
	}
	end := i + len(p.marker) - (len(seen) - len(chunk))
	p.marker = nil
	return end, true
}
