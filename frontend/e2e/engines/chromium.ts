// Chromium through playwright-core, on Debian's /usr/bin/chromium.

import { type BrowserContext, chromium, type Page as PwPage } from 'playwright-core'
import type { Browser, Key, Page, PageOptions, PageScript } from '../driver.ts'

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

/** chromiumArgs are the command-line flags every test's Chromium gets. */
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * launchChromium starts Chromium. extraArgs are added to its command line,
 * e.g. to lift the frame-rate limit for a frame-time measurement.
 */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: [...chromiumArgs, ...extraArgs] })
  return {
    name: 'chromium',
    async newPage({ width = 1280, height = 800, colorScheme = 'light' }: PageOptions = {}) {
      const context = await browser.newContext({ viewport: { width, height }, colorScheme })
      // Copy writes to the clipboard; reading it back needs both permissions.
      await context.grantPermissions(['clipboard-read', 'clipboard-write'])
      const page = await context.newPage()
      page.on('dialog', (dialog) => void dialog.dismiss())
      return wrap(context, page)
    },
    close: () => browser.close(),
  }
}

function wrap(context: BrowserContext, page: PwPage): Page {
  return {
    goto: async (url) => {
      await page.goto(url)
    },
    reload: async () => {
      await page.reload()
    },
    evaluate: <R>(script: PageScript<R>) => page.evaluate(script.source) as Promise<R>,
    click: (selector) => page.locator(selector).first().click(),
    fill: (selector, text) => page.locator(selector).first().fill(text),
    type: (text) => page.keyboard.type(text),
    press: (key: Key) => page.keyboard.press(key),
    wheel: async (selector, deltaY) => {
      const box = await page.locator(selector).first().boundingBox()
      if (!box) {
        throw new Error(`${selector} is not visible`)
      }
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
      await page.mouse.wheel(0, deltaY)
    },
    setViewport: (width, height) => page.setViewportSize({ width, height }),
    screenshot: async (path) => {
      await page.screenshot({ path })
    },
    close: () => context.close(),
  }
}
