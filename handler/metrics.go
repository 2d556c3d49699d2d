package handler

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the relay's Prometheus metrics, on a registry of their own.
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec
	firstEvent     prometheus.Histogram
	firstLine      prometheus.Histogram
	duration       prometheus.Histogram
	lines          prometheus.Counter
	bytes          prometheus.Counter
	upstreamErrors *prometheus.CounterVec
	clientAborts   prometheus.Counter
	rejections     *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	authFailures   prometheus.Counter
}

func newMetrics() *metrics {
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_requests_total", Help: "Requests answered, by route and status code."}, []string{"route", "code"}),
		firstEvent: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrelay_first_event_seconds", Help: "Time from request to the upstream's first event.", Buckets: latency}),
		firstLine: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrelay_first_line_seconds", Help: "Time from request to the first line written to the client.", Buckets: latency}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamrelay_stream_duration_seconds", Help: "Duration of streams that got a first event.",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}}),
		lines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamrelay_lines_total", Help: "Lines (deltas) relayed to clients."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamrelay_bytes_total", Help: "Body bytes relayed to clients."}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_upstream_errors_total", Help: "Upstream failures, by kind."}, []string{"kind"}),
		clientAborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamrelay_client_aborts_total", Help: "Streams whose client left before the end."}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_rate_limit_rejections_total", Help: "Requests refused by a limit, by limit."}, []string{"limit"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamrelay_tokens_total", Help: "Tokens the upstream reported using, by type."}, []string{"type"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamrelay_auth_failures_total", Help: "Requests with a missing or wrong API token."}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.firstEvent, m.firstLine, m.duration, m.lines, m.bytes,
		m.upstreamErrors, m.clientAborts, m.rejections, m.tokens, m.authFailures,
	)
	return m
}

// countOpen exports open, the streams admitted and not yet ended, as a
// gauge: the limiter counts them already.
func (m *metrics) countOpen(open func() int) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "streamrelay_streams_active", Help: "Streams admitted and not yet ended."},
		func() float64 { return float64(open()) }))
}

// observe records one finished request.
func (m *metrics) observe(route string, status int, rec *record) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	if rec.firstEvent > 0 {
		m.firstEvent.Observe(rec.firstEvent.Seconds())
		m.duration.Observe(rec.duration.Seconds())
	}
	if rec.firstLine > 0 {
		m.firstLine.Observe(rec.firstLine.Seconds())
	}
	m.lines.Add(float64(rec.lines))
	m.bytes.Add(float64(rec.bytes))
	if rec.usage.PromptTokens > 0 || rec.usage.CompletionTokens > 0 {
		m.tokens.WithLabelValues("prompt").Add(float64(rec.usage.PromptTokens))
		m.tokens.WithLabelValues("completion").Add(float64(rec.usage.CompletionTokens))
	}
	switch {
	case rec.outcome == outcomeClientAbort || rec.outcome == outcomeClientGone:
		m.clientAborts.Inc()
	case rec.upstreamError != "":
		m.upstreamErrors.WithLabelValues(rec.upstreamError).Inc()
	}
	if rec.rejectedBy != "" {
		m.rejections.WithLabelValues(rec.rejectedBy).Inc()
	}
}
