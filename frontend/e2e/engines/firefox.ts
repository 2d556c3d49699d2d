// Firefox ESR through puppeteer-core over WebDriver BiDi, on Debian's
// /usr/bin/firefox-esr. No geckodriver: puppeteer speaks BiDi to Firefox.

import puppeteer, { type BrowserContext, type Page as PpPage } from 'puppeteer-core'
import { type Browser, type Key, type Page, type PageOptions, type PageScript, pageScript, setValue } from '../driver.ts'

export const firefoxPath = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr'

/** launchFirefox starts headless Firefox. */
export async function launchFirefox(): Promise<Browser> {
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: firefoxPath, headless: true })
  return {
    name: 'firefox',
    async newPage({ width = 1280, height = 800, colorScheme = 'light' }: PageOptions = {}) {
      if (colorScheme !== 'light') {
        // puppeteer emulates media features over CDP only, which Firefox lacks.
        throw new Error('Firefox: prefers-color-scheme emulation needs CDP')
      }
      const context = await browser.createBrowserContext()
      const page = await context.newPage()
      await page.setViewport({ width, height })
      page.on('dialog', (dialog) => void dialog.dismiss())
      return wrap(context, page)
    },
    close: () => browser.close(),
  }
}

function wrap(context: BrowserContext, page: PpPage): Page {
  return {
    goto: async (url) => {
      await page.goto(url)
    },
    reload: async () => {
      await page.reload()
    },
    evaluate: <R>(script: PageScript<R>) => page.evaluate(script.source) as Promise<R>,
    click: (selector) => page.locator(selector).click(),
    fill: async (selector, text) => {
      await page.evaluate(pageScript(setValue, { selector, text }).source)
    },
    type: (text) => page.keyboard.type(text),
    press: (key: Key) => page.keyboard.press(key),
    wheel: async (selector, deltaY) => {
      const box = await (await page.$(selector))?.boundingBox()
      if (!box) {
        throw new Error(`${selector} is not visible`)
      }
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
      await page.mouse.wheel({ deltaY })
    },
    setViewport: (width, height) => page.setViewport({ width, height }),
    screenshot: async (path) => {
      await page.screenshot({ path: path as `${string}.png` })
    },
    close: () => context.close(),
  }
}
