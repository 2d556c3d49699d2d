// Render cost of a growing Markdown answer with each candidate renderer:
// CPU time (process.cpuUsage, so a loaded machine does not inflate it) of
// adding one line to an answer of n lines, for n sampled in 1500..2000.
// Run: npx vitest run --config perf/vitest.config.ts
import { code } from '@streamdown/code'
import type { ReactNode } from 'react'
import { flushSync } from 'react-dom'
import { createRoot } from 'react-dom/client'
import ReactMarkdown from 'react-markdown'
import rehypeHighlight from 'rehype-highlight'
import remarkGfm from 'remark-gfm'
import { Streamdown } from 'streamdown'
import { expect, test } from 'vitest'
import { Markdown } from '../src/markdown/Markdown.tsx'
import { longAnswer } from './doc.ts'

const renderers: Record<string, (text: string) => ReactNode> = {
  'react-markdown + remark-gfm + rehype-highlight, blocks memoized': (text) => <Markdown text={text} live />,
  'react-markdown + remark-gfm + rehype-highlight, whole text': (text) => (
    <ReactMarkdown remarkPlugins={[remarkGfm]} rehypePlugins={[[rehypeHighlight, { detect: false }]]}>
      {text}
    </ReactMarkdown>
  ),
  'streamdown + @streamdown/code': (text) => (
    <Streamdown plugins={{ code }} mode="streaming">
      {text}
    </Streamdown>
  ),
}

const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 0))

for (const [name, render] of Object.entries(renderers)) {
  test(name, async () => {
    const lines = longAnswer(2000)
    const el = document.createElement('div')
    document.body.append(el)
    const root = createRoot(el)
    const times: number[] = []
    for (let n = 1500; n <= 2000; n += 10) {
      flushSync(() => root.render(render(lines.slice(0, n - 1).join(''))))
      await tick()
      const t0 = cpuMs()
      flushSync(() => root.render(render(lines.slice(0, n).join(''))))
      await tick() // work a renderer defers to a microtask or timer counts too
      times.push(cpuMs() - t0)
    }
    root.unmount()
    el.remove()
    times.sort((a, b) => a - b)
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? NaN
    console.log(`${name}: one more line at 1500..2000 lines: CPU p50 ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms`)
    expect(times.length).toBe(51)
  }, 600_000)
}
