// The one surface the e2e checks drive. Each engine (Chromium through
// playwright-core, Firefox through puppeteer-core over WebDriver BiDi,
// WebKitGTK through selenium-webdriver and WebKitWebDriver) implements it in
// engines/, so every check is written once and runs in all three.

import { setTimeout as delay } from 'node:timers/promises'

export type EngineName = 'chromium' | 'firefox' | 'webkit'

export type Key = 'Enter' | 'Escape' | 'Tab'

export interface PageOptions {
  width?: number
  height?: number
  colorScheme?: 'light' | 'dark'
}

/** Browser is one running engine. */
export interface Browser {
  readonly name: EngineName
  /** newPage opens a page with its own storage and cookies, where the engine can. */
  newPage(options?: PageOptions): Promise<Page>
  close(): Promise<void>
}

/** Page is one tab. Selectors are CSS selectors. */
export interface Page {
  goto(url: string): Promise<void>
  reload(): Promise<void>
  /**
   * evaluate runs script (built with pageScript) in the page and returns its
   * JSON result; a returned promise is awaited.
   */
  evaluate<R>(script: PageScript<R>): Promise<R>
  /** click clicks the first element matching selector, as a mouse would. */
  click(selector: string): Promise<void>
  /** fill replaces the text of the input or textarea matching selector. */
  fill(selector: string, text: string): Promise<void>
  /** type types text with the keyboard into the focused element. */
  type(text: string): Promise<void>
  press(key: Key): Promise<void>
  /** wheel turns the mouse wheel by deltaY pixels over the middle of selector. */
  wheel(selector: string, deltaY: number): Promise<void>
  setViewport(width: number, height: number): Promise<void>
  screenshot(path: string): Promise<void>
  close(): Promise<void>
}

/** PageScript is an expression to evaluate in the page, typed by its result. */
export interface PageScript<R> {
  readonly source: string
  readonly _result?: R
}

/**
 * pageScript turns fn and its JSON argument into an expression that every
 * driver can evaluate. fn must not close over anything: only its source text
 * travels. tsx compiles with esbuild's keepNames, which wraps inner functions
 * in __name(...); the expression defines that helper so such code still runs.
 */
export function pageScript<A, R>(fn: (arg: A) => R | Promise<R>, arg?: A): PageScript<R> {
  const json = arg === undefined ? 'undefined' : JSON.stringify(arg)
  return { source: `((__name) => (${fn.toString()})(${json}))((f) => f)` }
}

/**
 * waitFor evaluates fn in the page until it returns a truthy value, and
 * returns it; it fails after timeoutMs with what, and the last value.
 */
export async function waitFor<A, R>(
  page: Page,
  what: string,
  fn: (arg: A) => R | false | null | undefined,
  arg?: A,
  timeoutMs = 30_000,
): Promise<R> {
  const script = pageScript(fn, arg)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await page.evaluate(script)
    if (value) {
      return value as R
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value ${JSON.stringify(value)})`)
    }
    await delay(25)
  }
}

/**
 * setValue is the page-side fill for the drivers that have no fill of their
 * own: it sets the value through the native setter, as React expects of a
 * controlled field, and fires input. (Typing would turn every "\n" into an
 * Enter that sends the prompt.)
 */
export function setValue({ selector, text }: { selector: string; text: string }): true {
  const el = document.querySelector<HTMLTextAreaElement | HTMLInputElement>(selector)
  if (!el) {
    throw new Error(`no element matches ${selector}`)
  }
  const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype
  el.focus()
  Object.getOwnPropertyDescriptor(proto, 'value')?.set?.call(el, text)
  el.dispatchEvent(new Event('input', { bubbles: true }))
  return true
}
