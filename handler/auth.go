package handler

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"streamrelay/internal/limit"
)

// tokenSet holds the callers' API tokens as SHA-256 sums, so that every
// comparison has the same length and runs in constant time.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	set := make(tokenSet, len(tokens))
	for i, t := range tokens {
		set[i] = sha256.Sum256([]byte(t))
	}
	return set
}

// match reports whether token is in the set, and a short, stable name for
// it (never the token itself) to key limits on. It compares against every
// token, without stopping early.
func (s tokenSet) match(token string) (name string, ok bool) {
	sum := sha256.Sum256([]byte(token))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(sum[:], s[i][:])
	}
	return "token:" + hex.EncodeToString(sum[:4]), found == 1
}

var (
	errNoToken = &apiError{Status: http.StatusUnauthorized, Code: "unauthorized",
		Message: "This API needs a token: send Authorization: Bearer <token>."}
	errBadToken = &apiError{Status: http.StatusUnauthorized, Code: "invalid_token",
		Message: "The bearer token is not valid."}
)

const callerKey = "streamrelay.caller"

// authenticate checks the caller's bearer token when tokens are configured,
// and names the caller for the limits: by token, else by client address.
// A client address with too many failed tokens is refused before its token
// is even looked at.
func (h *Handler) authenticate(c *gin.Context) {
	if len(h.tokens) == 0 {
		c.Set(callerKey, "ip:"+c.ClientIP())
		return
	}
	if e := h.checkFailures(c); e != nil {
		writeError(c, e)
		return
	}
	scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		h.failed(c)
		c.Header("WWW-Authenticate", `Bearer realm="streamrelay"`)
		writeError(c, errNoToken)
		return
	}
	token = strings.TrimSpace(token)
	name, ok := h.tokens.match(token)
	if !ok {
		h.failed(c)
		c.Header("WWW-Authenticate", `Bearer realm="streamrelay", error="invalid_token"`)
		writeError(c, errBadToken)
		return
	}
	c.Set(callerKey, name)
	sum := sha256.Sum256([]byte(token))
	c.Set(ownerKey, hex.EncodeToString(sum[:]))
}

// checkFailures refuses a client address that has used up its failed
// authentications. A limiter that can't tell lets the request through: the
// token check still stands.
func (h *Handler) checkFailures(c *gin.Context) *apiError {
	if h.cfg.AuthFailures == nil {
		return nil
	}
	err := h.cfg.AuthFailures.Check(c.Request.Context(), "ip:"+c.ClientIP(), time.Now())
	var rejection *limit.Rejection
	switch {
	case errors.As(err, &rejection):
		recordOf(c).rejectedBy = rejection.Limit
		return tooMany(rejection)
	case err != nil:
		h.log.Warn("the failed-authentication limiter failed; letting the request through", "error", err)
	}
	return nil
}

// failed counts one failed authentication against the client's address.
func (h *Handler) failed(c *gin.Context) {
	h.metrics.authFailures.Inc()
	if h.cfg.AuthFailures == nil {
		return
	}
	if err := h.cfg.AuthFailures.Fail(c.Request.Context(), "ip:"+c.ClientIP(), time.Now()); err != nil {
		h.log.Warn("the failed-authentication limiter failed", "error", err)
	}
}

var errOriginNotAllowed = &apiError{Status: http.StatusForbidden, Code: "origin_not_allowed",
	Message: "Requests from this web origin are not allowed; ask the operator to add it to CORS_ORIGINS."}

// cors lets the configured origins call the API from a browser; the same
// origin always can. Other origins get no CORS headers, and their preflights
// and posts are refused. Credentials are never allowed: tokens travel in
// the Authorization header, not cookies.
func (h *Handler) cors(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if len(h.cfg.CORSOrigins) > 0 {
		c.Writer.Header().Add("Vary", "Origin")
	}
	if origin == "" || sameOrigin(origin, c.Request.Host) {
		return
	}
	preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
	allowAny := slices.Contains(h.cfg.CORSOrigins, "*")
	if !allowAny && !slices.Contains(h.cfg.CORSOrigins, origin) {
		if preflight || c.Request.Method == http.MethodPost || c.Request.Method == http.MethodDelete {
			writeError(c, errOriginNotAllowed)
		}
		return
	}
	header := c.Writer.Header()
	if allowAny {
		header.Set("Access-Control-Allow-Origin", "*")
	} else {
		header.Set("Access-Control-Allow-Origin", origin)
	}
	header.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After, X-Stream-ID, Location")
	if preflight {
		header.Set("Access-Control-Allow-Methods", "POST, GET, DELETE")
		header.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-ID, Accept, Prefer, Last-Event-ID")
		header.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// sameOrigin reports whether a browser's Origin names the host the request
// was sent to. Ports are not compared: a proxy may forward Host without one.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Hostname(), hostname(host))
}

func hostname(hostport string) string {
	u := url.URL{Host: hostport}
	return u.Hostname()
}
