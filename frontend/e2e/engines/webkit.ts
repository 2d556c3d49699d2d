// WebKitGTK (Safari's engine family) through selenium-webdriver, against
// Debian's WebKitWebDriver driving MiniBrowser. MiniBrowser has no headless
// mode, so the driver runs under `xvfb-run -a`, which gives it (and the
// browsers it starts) a private X display.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { Builder, By, Key as SeKey, type WebDriver, type WebElement } from 'selenium-webdriver'
import { type Browser, type Key, type Page, type PageScript, pageScript, setValue } from '../driver.ts'
import { freePort } from '../servers.ts'

export const webkitDriverPath = process.env.WEBKIT_DRIVER_PATH || '/usr/bin/WebKitWebDriver'

const keys: Record<Key, string> = { Enter: SeKey.ENTER, Escape: SeKey.ESCAPE, Tab: SeKey.TAB }

/** launchWebKit starts WebKitWebDriver under xvfb-run and opens a MiniBrowser session. */
export async function launchWebKit(): Promise<Browser> {
  const port = await freePort()
  // detached: the driver, Xvfb and MiniBrowser share a new process group,
  // so close() can end all of them; xvfb-run alone would leave them running.
  const service = spawn('xvfb-run', ['-a', webkitDriverPath, `--port=${port}`], {
    detached: true,
    stdio: 'ignore',
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForDriver(url, service)
    const driver = await new Builder().usingServer(url).withCapabilities({ browserName: 'MiniBrowser' }).build()
    return {
      name: 'webkit',
      async newPage({ width = 1280, height = 800, colorScheme = 'light' } = {}) {
        if (colorScheme !== 'light') {
          throw new Error('WebKitWebDriver has no prefers-color-scheme emulation')
        }
        await driver.manage().window().setRect({ width, height })
        return wrap(driver)
      },
      async close() {
        await driver.quit().catch(() => {})
        await stop(service)
      },
    }
  } catch (err) {
    await stop(service)
    throw err
  }
}

async function waitForDriver(url: string, service: ChildProcess): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    if (service.exitCode !== null) {
      throw new Error(`xvfb-run ${webkitDriverPath} exited with ${service.exitCode}`)
    }
    try {
      const response = await fetch(`${url}/status`)
      if (response.ok) {
        return
      }
    } catch {
      // not listening yet
    }
    await delay(50)
  }
  throw new Error(`WebKitWebDriver did not answer at ${url}`)
}

async function stop(service: ChildProcess): Promise<void> {
  if (service.exitCode !== null || service.signalCode !== null || service.pid === undefined) {
    return
  }
  const exited = once(service, 'exit')
  process.kill(-service.pid, 'SIGTERM')
  const timer = setTimeout(() => service.pid && process.kill(-service.pid, 'SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}

// wrap makes a Page of the session's one window. A WebDriver session has one
// profile for all its windows, so "a new page" cannot get fresh storage:
// goto empties localStorage and sessionStorage the first time this page
// visits an origin instead.
interface Wheel {
  scroll(x: number, y: number, deltaX: number, deltaY: number, origin: WebElement): { perform(): Promise<void> }
}

function wrap(driver: WebDriver): Page {
  const visited = new Set<string>()
  const run = <R>(script: PageScript<R>) => driver.executeScript<R>(`return ${script.source}`)
  return {
    goto: async (url) => {
      const origin = new URL(url).origin
      if (!visited.has(origin)) {
        visited.add(origin)
        // Empty the origin's storage from a page of it that is not the app
        // (the relay's /healthz): the app may save its state as it unloads.
        await driver.get(`${origin}/healthz`)
        await run(
          pageScript(() => {
            localStorage.clear()
            sessionStorage.clear()
            return true
          }),
        )
      }
      await driver.get(url)
    },
    reload: () => driver.navigate().refresh(),
    evaluate: run,
    click: async (selector) => {
      await driver.findElement(By.css(selector)).click()
    },
    fill: async (selector, text) => {
      await run(pageScript(setValue, { selector, text }))
    },
    type: (text) => driver.actions().sendKeys(text).perform(),
    press: (key) => driver.actions().keyDown(keys[key]).keyUp(keys[key]).perform(),
    wheel: async (selector, deltaY) => {
      const el = await driver.findElement(By.css(selector))
      // Actions.scroll (a wheel input source) is in selenium-webdriver 4.46
      // but not yet in its @types package.
      const actions = driver.actions() as unknown as Wheel
      await actions.scroll(0, 0, 0, deltaY, el).perform()
    },
    setViewport: async (width, height) => {
      await driver.manage().window().setRect({ width, height })
    },
    screenshot: async (path) => {
      await fs.writeFile(path, await driver.takeScreenshot(), 'base64')
    },
    close: async () => {
      await driver.get('about:blank')
    },
  }
}
