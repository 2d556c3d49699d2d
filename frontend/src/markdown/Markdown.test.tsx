// @vitest-environment happy-dom
import { cleanup, render } from '@testing-library/react'
import { afterEach, describe, expect, it } from 'vitest'
import { Markdown } from './Markdown.tsx'

afterEach(cleanup)

describe('Markdown', () => {
  it('renders emphasis, lists, tables and highlighted code with a copy button', () => {
    const text = 'Some **bold**.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```go\nfunc main() {}\n```\n'
    const { container, getAllByTestId } = render(<Markdown text={text} live={false} />)
    expect(container.querySelector('strong')?.textContent).toBe('bold')
    expect(container.querySelectorAll('li')).toHaveLength(2)
    expect(container.querySelectorAll('td')).toHaveLength(2)
    expect(container.querySelector('pre code.language-go .hljs-keyword')?.textContent).toBe('func')
    expect(getAllByTestId('copy-code')).toHaveLength(1)
    expect(container.textContent).not.toContain('**')
  })

  it('shows raw HTML from the model as text, never as elements', () => {
    const text = 'Hi <img src=x onerror="alert(1)"> <script>alert(2)</script>\n\n<b>bold?</b>\n\n[link](javascript:alert(3))'
    const { container } = render(<Markdown text={text} live={false} />)
    expect(container.querySelector('img, script, b')).toBeNull()
    expect(container.textContent).toContain('<script>alert(2)</script>')
    expect(container.querySelector('a')?.getAttribute('href') ?? '').not.toContain('javascript:')
  })

  it('closes an unfinished emphasis while live', () => {
    const { container } = render(<Markdown text={'Almost **there'} live />)
    expect(container.querySelector('strong')?.textContent).toBe('there')
    expect(container.textContent).not.toContain('**')
  })

  it('renders an unterminated code fence as code while live', () => {
    const { container } = render(<Markdown text={'Look:\n\n```ts\nconst a = 1\n'} live />)
    expect(container.querySelector('pre code')?.textContent).toBe('const a = 1\n')
  })
})
