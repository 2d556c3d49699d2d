// The frame-time measurement: a fake upstream that streams a long Markdown
// answer at a fixed line rate, and the page-side recorder of frame times.

import type http from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { type Page, pageScript } from './driver.ts'
import { sseChunk, sseEnd, startUpstream, type Upstream, write } from './servers.ts'

/**
 * longMarkdown returns n lines (each ending in "\n") of the Markdown models
 * write; the same answer the renderer's benchmark measures.
 */
export { longAnswer as longMarkdown } from '../perf/doc.ts'

/**
 * startLineUpstream starts an upstream that streams lines, one delta per
 * line, at perSecond lines a second (on a fixed schedule, so a late timer
 * does not slow the whole answer), then ends the stream.
 */
export function startLineUpstream(lines: string[], perSecond: number): Promise<Upstream> {
  return startUpstream(async (res: http.ServerResponse) => {
    const start = performance.now()
    for (const [i, line] of lines.entries()) {
      const due = start + (i * 1000) / perSecond
      const wait = due - performance.now()
      if (wait > 0) {
        await delay(wait)
      }
      if (res.destroyed) {
        return
      }
      await write(res, sseChunk(line))
    }
    res.end(sseEnd())
  })
}

export interface FrameStats {
  /** frames that rendered new text: the gap the page changed in, and the one after (its layout and paint) */
  frames: number
  p50: number
  p95: number
  max: number
  /** every frame while streaming, idle ones too */
  allFrames: number
  allP95: number
  longFrames: number
}

/**
 * startFrameRecorder records, in the page, the time between consecutive
 * animation frames from the moment the newest answer streams until it ends,
 * and the Long Animation Frames (over 50 ms) Chromium reports meanwhile.
 */
export async function startFrameRecorder(page: Page): Promise<void> {
  await page.evaluate(
    pageScript(() => {
      const w = window as unknown as { __e2eFrames: number[]; __e2eWork: number[]; __e2eLong: number }
      w.__e2eFrames = []
      w.__e2eWork = []
      w.__e2eLong = 0
      // A frame did work if the page changed since the frame before, or in
      // the gap before that (a change's layout and paint land in the next gap).
      let changed = false
      let changedBefore = false
      new MutationObserver(() => {
        changed = true
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
      const statusNow = () => {
        const turns = document.querySelectorAll('[data-testid="assistant-turn"]')
        return turns[turns.length - 1]?.getAttribute('data-status') ?? 'none'
      }
      let last = -1
      let seen = false
      const tick = (now: number) => {
        const status = statusNow()
        if (status === 'streaming') {
          seen = true
          if (last >= 0) {
            w.__e2eFrames.push(now - last)
            if (changed || changedBefore) {
              w.__e2eWork.push(now - last)
            }
          }
          last = now
          changedBefore = changed
          changed = false
        }
        if (!seen || status === 'streaming' || status === 'connecting') {
          requestAnimationFrame(tick)
        }
      }
      requestAnimationFrame(tick)
      if (PerformanceObserver.supportedEntryTypes.includes('long-animation-frame')) {
        new PerformanceObserver((list) => {
          if (statusNow() === 'streaming') {
            w.__e2eLong += list.getEntries().length
          }
        }).observe({ type: 'long-animation-frame' })
      }
      return true
    }),
  )
}

/** frameStats waits (in the page, without polling) for the answer to end and summarises the frames. */
export function frameStats(page: Page): Promise<FrameStats> {
  return page.evaluate(
    pageScript(async () => {
      const w = window as unknown as { __e2eFrames: number[]; __e2eWork: number[]; __e2eLong: number }
      const ended = () => {
        const turns = document.querySelectorAll('[data-testid="assistant-turn"]')
        const status = turns[turns.length - 1]?.getAttribute('data-status')
        return status !== 'streaming' && status !== 'connecting'
      }
      await new Promise<void>((resolve) => {
        if (ended()) {
          resolve()
          return
        }
        const observer = new MutationObserver(() => {
          if (ended()) {
            observer.disconnect()
            resolve()
          }
        })
        observer.observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-status'] })
      })
      const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
      const at = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN
      const work = sorted(w.__e2eWork)
      const all = sorted(w.__e2eFrames)
      return {
        frames: work.length,
        p50: at(work, 0.5),
        p95: at(work, 0.95),
        max: work[work.length - 1] ?? NaN,
        allFrames: all.length,
        allP95: at(all, 0.95),
        longFrames: w.__e2eLong,
      }
    }),
  )
}
