/** StreamStats describes how fast one answer arrived. */
export interface StreamStats {
  /** Milliseconds from sending the request to the first delta; null if none came. */
  firstTokenMs: number | null
  /** Number of delta lines received. */
  lines: number
  /** Lines per second from the first delta to the end; null when it can't be told. */
  linesPerSecond: number | null
}

/** streamStats computes StreamStats from performance.now() timestamps. */
export function streamStats(t: {
  startedAt: number
  firstDeltaAt: number | null
  endedAt: number
  lines: number
}): StreamStats {
  if (t.firstDeltaAt === null) {
    return { firstTokenMs: null, lines: t.lines, linesPerSecond: null }
  }
  const seconds = (t.endedAt - t.firstDeltaAt) / 1000
  return {
    firstTokenMs: t.firstDeltaAt - t.startedAt,
    lines: t.lines,
    linesPerSecond: t.lines > 1 && seconds > 0 ? t.lines / seconds : null,
  }
}

/** formatStats returns the small print shown under an answer. */
export function formatStats(s: StreamStats): string {
  if (s.firstTokenMs === null) {
    return 'no tokens received'
  }
  const parts = [`first token ${Math.round(s.firstTokenMs)} ms`]
  if (s.linesPerSecond !== null) {
    parts.push(`${s.linesPerSecond.toFixed(1)} lines/s`)
  }
  parts.push(`${s.lines} ${s.lines === 1 ? 'line' : 'lines'}`)
  return parts.join(' · ')
}
