package handler

import (
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// notBuiltPage is served at / when the frontend was never built.
const notBuiltPage = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>streamrelay: frontend not built</title>
<body>
<h1>The frontend is not built</h1>
<p>The API works: <code>POST /message/stream</code>. To get the chat page, build the frontend
with <code>make run</code>, or <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>,
then restart the server (or point <code>FRONTEND_DIR</code> at a built <code>dist</code> folder).</p>
</body></html>
`

// frontend serves the built single-page app from cfg.Frontend: files as
// they are, and index.html for any other page path.
func (h *Handler) frontend(c *gin.Context) {
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		writeError(c, errNotFound)
		return
	}
	setPageHeaders(c.Writer.Header())
	pages := h.cfg.Frontend
	if pages == nil || !isFile(pages, "index.html") {
		if c.Request.URL.Path == "/" {
			c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(notBuiltPage))
			return
		}
		writeError(c, errNotFound)
		return
	}
	urlPath := path.Clean("/" + c.Request.URL.Path)
	name := strings.TrimPrefix(urlPath, "/")
	switch {
	case name != "" && isFile(pages, name):
		if strings.HasPrefix(name, "assets/") {
			// Vite names these by a hash of their content.
			c.Header("Cache-Control", "public, max-age=31536000, immutable")
		}
		http.ServeFileFS(c.Writer, c.Request, pages, name)
	case path.Ext(urlPath) == "" && !strings.HasPrefix(urlPath, "/message/"):
		c.Header("Cache-Control", "no-cache")
		http.ServeFileFS(c.Writer, c.Request, pages, "index.html")
	default:
		writeError(c, errNotFound)
	}
}

// isFile reports whether name is a regular file in fsys.
func isFile(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.Mode().IsRegular()
}

// contentSecurityPolicy allows the page its own scripts, styles and API and
// nothing else: no inline script, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// setPageHeaders sets the security headers of the frontend's pages.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}
