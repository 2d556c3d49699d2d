package handler

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// pageConfig is what GET /config tells the page: who answers and the limits
// a request must fit. It holds no secrets.
type pageConfig struct {
	Model          string   `json:"model"`
	Models         []string `json:"models"`
	Demo           bool     `json:"demo"`
	MaxInputChars  int      `json:"max_input_chars"` // 0: no limit
	MaxMessages    int      `json:"max_messages"`    // 0: no limit
	TokensRequired bool     `json:"tokens_required"`
}

// config answers GET /config. It needs no token: the page reads it to learn
// that it must ask for one.
func (h *Handler) config(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.JSON(http.StatusOK, pageConfig{
		Model:          h.cfg.Model,
		Models:         h.cfg.Models,
		Demo:           h.cfg.Demo,
		MaxInputChars:  max(h.cfg.MaxInputChars, 0), // Off (-1) is 0 to the page
		MaxMessages:    max(h.cfg.MaxMessages, 0),
		TokensRequired: len(h.tokens) > 0,
	})
}
