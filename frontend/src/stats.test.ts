import { describe, expect, it } from 'vitest'
import { formatStats, streamStats } from './stats.ts'

describe('streamStats', () => {
  it('measures time to first token and the rate after it', () => {
    const s = streamStats({ startedAt: 1000, firstDeltaAt: 1250, endedAt: 3250, lines: 50 })
    expect(s).toEqual({ firstTokenMs: 250, lines: 50, linesPerSecond: 25 })
  })

  it('has no rate for a single line', () => {
    const s = streamStats({ startedAt: 0, firstDeltaAt: 10, endedAt: 10, lines: 1 })
    expect(s).toEqual({ firstTokenMs: 10, lines: 1, linesPerSecond: null })
  })

  it('has no first token when nothing arrived', () => {
    const s = streamStats({ startedAt: 0, firstDeltaAt: null, endedAt: 500, lines: 0 })
    expect(s).toEqual({ firstTokenMs: null, lines: 0, linesPerSecond: null })
  })
})

describe('formatStats', () => {
  it.each([
    [{ firstTokenMs: 249.6, lines: 50, linesPerSecond: 25.04 }, 'first token 250 ms · 25.0 lines/s · 50 lines'],
    [{ firstTokenMs: 12, lines: 1, linesPerSecond: null }, 'first token 12 ms · 1 line'],
    [{ firstTokenMs: null, lines: 0, linesPerSecond: null }, 'no tokens received'],
  ])('formats %o', (stats, want) => {
    expect(formatStats(stats)).toBe(want)
  })
})
