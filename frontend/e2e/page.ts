// What the checks do on the chat page, through the driver surface. The
// functions passed to evaluate and waitFor run in the page: they are
// self-contained (only their source travels) and use the data-testid hooks
// of the page.

import fs from 'node:fs/promises'
import { createRequire } from 'node:module'
import { type Page, pageScript, waitFor } from './driver.ts'

export interface AnswerState {
  status: string
  text: string
}

/** open loads url and waits for the prompt box. */
export async function open(page: Page, url: string): Promise<void> {
  await page.goto(url)
  await waitFor(page, 'the prompt box', () => document.querySelector('[data-testid="prompt"]') !== null)
}

/** send fills the prompt box with prompt and presses Enter in it. */
export async function send(page: Page, prompt: string): Promise<void> {
  await page.fill('[data-testid="prompt"]', prompt)
  await page.click('[data-testid="prompt"]')
  await page.press('Enter')
}

/**
 * streaming waits until the newest answer is streaming and has more than
 * longerThan characters, and returns it.
 */
export function streaming(page: Page, longerThan = 0, timeoutMs?: number): Promise<AnswerState> {
  return waitForAnswer(page, { settled: false, longerThan }, timeoutMs)
}

/** settled waits until the newest answer has ended, however it ended, and returns it. */
export function settled(page: Page, timeoutMs?: number): Promise<AnswerState> {
  return waitForAnswer(page, { settled: true, longerThan: 0 }, timeoutMs)
}

function waitForAnswer(page: Page, want: { settled: boolean; longerThan: number }, timeoutMs = 30_000) {
  return waitFor(
    page,
    want.settled ? 'the answer to end' : `a streaming answer longer than ${want.longerThan} characters`,
    ({ settled, longerThan }) => {
      const turns = document.querySelectorAll('[data-testid="assistant-turn"]')
      const turn = turns[turns.length - 1]
      const answer = turn?.querySelector('[data-testid="answer"]')
      if (!turn || !answer) {
        return false
      }
      const status = turn.getAttribute('data-status') ?? ''
      // The answer's text as read, without the labels of buttons inside it.
      const copy = answer.cloneNode(true) as Element
      copy.querySelectorAll('button').forEach((b) => b.remove())
      const text = copy.textContent ?? ''
      const ok = settled
        ? !['connecting', 'streaming', 'reconnecting'].includes(status)
        : status === 'streaming' && text.length > longerThan
      return ok && { status, text }
    },
    want,
    timeoutMs,
  )
}

/**
 * sourceLetters is letters of Markdown source as it reads once rendered:
 * a code fence's info string (```sh) is not shown.
 */
export function sourceLetters(markdown: string): string {
  return letters(markdown.replace(/^(\s*)(```|~~~)[^\n]*$/gm, '$1'))
}

/** letters keeps the letters, digits and symbols (emoji) of text, to compare rendered Markdown with its source. */
export function letters(text: string): string {
  return text.replace(/[^\p{L}\p{N}\p{So}]/gu, '')
}

/** text returns the trimmed text of the last element matching selector, or null. */
export function text(page: Page, selector: string): Promise<string | null> {
  return page.evaluate(
    pageScript((sel) => {
      const all = document.querySelectorAll(sel)
      return all.length > 0 ? (all[all.length - 1]?.textContent ?? '').trim() : null
    }, selector),
  )
}

/** count returns how many elements match selector. */
export function count(page: Page, selector: string): Promise<number> {
  return page.evaluate(pageScript((sel) => document.querySelectorAll(sel).length, selector))
}

/** visible reports whether the last element matching selector is rendered and visible. */
export function visible(page: Page, selector: string): Promise<boolean> {
  return page.evaluate(
    pageScript((sel) => {
      const all = document.querySelectorAll(sel)
      const el = all[all.length - 1]
      return !!el && el.checkVisibility({ visibilityProperty: true } as CheckVisibilityOptions)
    }, selector),
  )
}

/** waitVisible waits until the last element matching selector is visible (or, with want false, is not). */
export async function waitVisible(page: Page, selector: string, want = true): Promise<void> {
  await waitFor(
    page,
    `${selector} to be ${want ? 'visible' : 'hidden'}`,
    ({ sel, want }) => {
      const all = document.querySelectorAll(sel)
      const el = all[all.length - 1]
      const shown = !!el && el.checkVisibility({ visibilityProperty: true } as CheckVisibilityOptions)
      return shown === want
    },
    { sel: selector, want },
  )
}

/**
 * clickLast clicks, as a mouse would, the last element matching selector
 * inside the last element matching within (the newest answer, say).
 */
export async function clickLast(page: Page, selector: string, within = 'body'): Promise<void> {
  const found = await page.evaluate(
    pageScript(({ selector, within }) => {
      document.querySelectorAll('[data-e2e-target]').forEach((el) => el.removeAttribute('data-e2e-target'))
      const scopes = document.querySelectorAll(within)
      const all = scopes[scopes.length - 1]?.querySelectorAll(selector) ?? []
      const el = all[all.length - 1]
      el?.setAttribute('data-e2e-target', '')
      return !!el
    }, { selector, within }),
  )
  if (!found) {
    throw new Error(`nothing matches ${selector} in ${within}`)
  }
  await page.click('[data-e2e-target]')
}

/** focusedTestId returns the data-testid of the focused element ('' for none, 'body' for the page). */
export function focusedTestId(page: Page): Promise<string> {
  return page.evaluate(
    pageScript(() => {
      const el = document.activeElement
      if (!el || el === document.body) {
        return 'body'
      }
      return el.getAttribute('data-testid') ?? el.tagName.toLowerCase()
    }),
  )
}

/**
 * recordRequests wraps the page's fetch so the bodies it POSTs to
 * /message/stream can be read back with requestBodies. The request itself
 * goes out unchanged.
 */
export async function recordRequests(page: Page): Promise<void> {
  await page.evaluate(
    pageScript(() => {
      const w = window as unknown as { __e2eBodies?: unknown[]; fetch: typeof fetch }
      if (w.__e2eBodies) {
        return true
      }
      const bodies: unknown[] = []
      w.__e2eBodies = bodies
      const original = w.fetch.bind(window)
      w.fetch = (input, init) => {
        const url = input instanceof Request ? input.url : String(input)
        // Only the POSTs that start answers: the page also asks each
        // stream's /status, and resumes or cancels with GET and DELETE.
        if (url.includes('/message/stream') && init?.method === 'POST') {
          bodies.push(typeof init?.body === 'string' ? JSON.parse(init.body) : null)
        }
        return original(input, init)
      }
      return true
    }),
  )
}

/** requestBodies returns the bodies recorded since recordRequests. */
export function requestBodies(page: Page): Promise<unknown[]> {
  return page.evaluate(pageScript(() => (window as unknown as { __e2eBodies?: unknown[] }).__e2eBodies ?? []))
}

/** watchCSP counts Content-Security-Policy violations from now on; read them with cspViolations. */
export async function watchCSP(page: Page): Promise<void> {
  await page.evaluate(
    pageScript(() => {
      const w = window as unknown as { __e2eCSP?: string[] }
      if (!w.__e2eCSP) {
        const seen: string[] = []
        w.__e2eCSP = seen
        document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`))
      }
      return true
    }),
  )
}

export function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate(pageScript(() => (window as unknown as { __e2eCSP?: string[] }).__e2eCSP ?? []))
}

const axeSource = fs.readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

export interface AxeViolation {
  id: string
  impact: string
  help: string
  targets: string[]
}

/** axeViolations injects axe-core and returns its serious and critical violations. */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate<boolean>({ source: `(() => { ${await axeSource}\n; return true })()` })
  return page.evaluate(
    pageScript(async () => {
      const axe = (window as unknown as { axe: typeof import('axe-core') }).axe
      const result = await axe.run(document, { resultTypes: ['violations'] })
      return result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => ({
          id: v.id,
          impact: v.impact ?? '',
          help: v.help,
          targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
        }))
    }),
  )
}

/**
 * clickConversation clicks, in the conversation list, the entry whose title
 * holds title, or with remove its delete button.
 */
export async function clickConversation(page: Page, title: string, remove = false): Promise<void> {
  const found = await page.evaluate(
    pageScript(({ title, remove }) => {
      document.querySelectorAll('[data-e2e-target]').forEach((el) => el.removeAttribute('data-e2e-target'))
      const items = [...document.querySelectorAll('[data-testid="conversation-item"]')]
      let target: Element | null | undefined = items.find((el) => (el.textContent ?? '').includes(title))
      if (remove) {
        // The delete button sits beside the entry: the nearest ancestor that holds one.
        let scope = target?.parentElement
        while (scope && !scope.querySelector('[data-testid="delete-conversation"]')) {
          scope = scope.parentElement
        }
        target = scope?.querySelector('[data-testid="delete-conversation"]')
      }
      target?.setAttribute('data-e2e-target', '')
      return !!target
    }, { title, remove }),
  )
  if (!found) {
    throw new Error(`no conversation titled ${JSON.stringify(title)}${remove ? ' with a delete button' : ''}`)
  }
  await page.click('[data-e2e-target]')
}
