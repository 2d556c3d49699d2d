package demo

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// answer is one response in the making.
type answer struct {
	opts    Options
	head    string   // the chunk JSON up to the choices
	tokens  []string // the demo text's deltas; nil with opts.Deltas
	max     int      // the number of deltas to send
	reason  string   // finish_reason after the last delta
	prompts int      // prompt tokens, roughly: the prompt's words
}

func (s *server) newAnswer(prompt string, req request) *answer {
	id := "chatcmpl-demo-" + itoa(s.ids.Add(1))
	a := &answer{
		opts:    s.opts,
		head:    `{"id":"` + id + `","object":"chat.completion.chunk","created":` + itoa(time.Now().Unix()) + `,"model":"` + Model + `",`,
		reason:  "stop",
		prompts: len(strings.Fields(prompt)),
	}
	if s.opts.Deltas > 0 {
		a.max = s.opts.Deltas
	} else {
		a.tokens = Tokens(Answer(prompt))
		a.max = len(a.tokens)
	}
	if n := limit(req); n > 0 && n < a.max {
		a.max, a.reason = n, "length"
	}
	return a
}

// delta returns the content of delta i, stamped if asked.
func (a *answer) delta(i int) string {
	var text string
	if a.tokens != nil {
		text = a.tokens[i]
	} else {
		text = "w" + strconv.Itoa(i+1) + " "
	}
	if a.opts.Stamp {
		text = "T" + itoa(time.Now().UnixNano()) + "|" + text
	}
	return text
}

// stream sends the answer as server-sent events, pausing opts.Delay before
// each content delta, and stops as soon as the client goes away.
func (a *answer) stream(w http.ResponseWriter, r *http.Request, usage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	flush := http.NewResponseController(w).Flush
	send := func(event string) bool {
		if _, err := w.Write([]byte("data: " + event + "\n\n")); err != nil {
			return false
		}
		return flush() == nil
	}

	if !send(a.chunk(`{"role":"assistant","content":""}`, "")) {
		return
	}
	var timer *time.Timer
	if a.opts.Delay > 0 {
		timer = time.NewTimer(a.opts.Delay)
		defer timer.Stop()
	}
	for i := 0; i < a.max; i++ {
		if timer != nil {
			if i > 0 {
				timer.Reset(a.opts.Delay)
			}
			select {
			case <-r.Context().Done():
				return
			case <-timer.C:
			}
		}
		if !send(a.chunk(`{"content":`+jsonString(a.delta(i))+`}`, "")) {
			return
		}
	}
	if !send(a.chunk(`{}`, a.reason)) {
		return
	}
	if usage {
		if !send(a.head + `"choices":[],` + a.usage() + `}`) {
			return
		}
	}
	send("[DONE]")
}

// chunk returns one chat.completion.chunk with a single choice.
func (a *answer) chunk(delta, finishReason string) string {
	reason := "null"
	if finishReason != "" {
		reason = `"` + finishReason + `"`
	}
	return a.head + `"choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + reason + `}]}`
}

// writeWhole answers a request that did not ask for a stream.
func (a *answer) writeWhole(w http.ResponseWriter) {
	var b strings.Builder
	for i := 0; i < a.max; i++ {
		b.WriteString(a.delta(i))
	}
	head := strings.Replace(a.head, "chat.completion.chunk", "chat.completion", 1)
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(head + `"choices":[{"index":0,"message":{"role":"assistant","content":` +
		jsonString(b.String()) + `},"finish_reason":"` + a.reason + `"}],` + a.usage() + `}`))
}

// usage returns the "usage" member of the answer's last chunk.
func (a *answer) usage() string {
	return `"usage":{"prompt_tokens":` + strconv.Itoa(a.prompts) +
		`,"completion_tokens":` + strconv.Itoa(a.max) +
		`,"total_tokens":` + strconv.Itoa(a.prompts+a.max) + `}`
}

// jsonString returns s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
