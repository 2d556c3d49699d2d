package handler

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// defaultHosts are the Host names served while the API is open, when
// Config.AllowedHosts names none.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

var errHostNotAllowed = &apiError{Status: http.StatusForbidden, Code: "host_not_allowed",
	Message: "This server does not answer to that host name; ask the operator to add it to ALLOWED_HOSTS."}

// hostSet is the Host names a server answers to, lower case, without port
// or IPv6 brackets; "*" is any.
type hostSet map[string]bool

func newHostSet(hosts []string) hostSet {
	if len(hosts) == 0 {
		hosts = defaultHosts
	}
	set := hostSet{}
	for _, h := range hosts {
		set[hostKey(h)] = true
	}
	return set
}

// allows reports whether the request's Host is in the set.
func (s hostSet) allows(host string) bool {
	return s["*"] || s[hostKey(host)]
}

// hostKey is host without its port, lower case, an IP address in its
// canonical form: "[::1]:8080" and "[0:0::1]" are both "::1".
func hostKey(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return addr.Unmap().String()
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Unmap().String()
	}
	return host
}

// checkHost refuses a request whose Host is not allowed, while the API is
// open (no tokens): without it, a web page could rebind its own name to
// this server's address and spend the upstream key from a visitor's
// browser. With tokens, the token is the protection and any Host is served.
func (h *Handler) checkHost(c *gin.Context) {
	if len(h.tokens) == 0 && !h.hosts.allows(c.Request.Host) {
		writeError(c, errHostNotAllowed)
	}
}

// proxyWatch warns once when X-Forwarded-For comes from a peer that is not
// a trusted proxy: the app then ignores it, and every client behind that
// proxy counts as the proxy, sharing one caller's limits.
type proxyWatch struct {
	trusted []netip.Prefix
	once    sync.Once
}

func newProxyWatch(proxies []string) *proxyWatch {
	w := &proxyWatch{}
	for _, p := range proxies {
		if prefix, err := netip.ParsePrefix(p); err == nil {
			w.trusted = append(w.trusted, prefix)
		} else if addr, err := netip.ParseAddr(p); err == nil {
			w.trusted = append(w.trusted, netip.PrefixFrom(addr, addr.BitLen()))
		}
	}
	return w
}

// untrusted reports whether the peer at remoteAddr ("ip:port") is not a
// trusted proxy.
func (w *proxyWatch) untrusted(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range w.trusted {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// watchForwarded is the middleware around proxyWatch.
func (h *Handler) watchForwarded(c *gin.Context) {
	if c.GetHeader("X-Forwarded-For") == "" || !h.proxies.untrusted(c.Request.RemoteAddr) {
		return
	}
	h.proxies.once.Do(func() {
		h.log.Warn("X-Forwarded-For came from a peer that is not in TRUSTED_PROXIES; it is ignored, and every client behind that proxy counts as the proxy",
			"peer", c.RemoteIP())
	})
}
