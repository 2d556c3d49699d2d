import type { Element, ElementContent } from 'hast'
import { type ComponentProps, memo, useMemo } from 'react'
import ReactMarkdown, { type Components, type Options } from 'react-markdown'
import rehypeHighlight from 'rehype-highlight'
import remarkGfm from 'remark-gfm'
import remend from 'remend'
import { splitBlocks } from './blocks.ts'
import { CopyButton } from './CopyButton.tsx'

const remarkPlugins: Options['remarkPlugins'] = [remarkGfm]
// detect: false keeps unlabelled blocks plain; guessing the language of
// every block on every frame costs more than it shows.
const rehypePlugins: Options['rehypePlugins'] = [[rehypeHighlight, { detect: false }]]

const components: Components = { pre: CodeBlock }

/**
 * Markdown renders model text as Markdown: GFM, highlighted code blocks with
 * a copy button. Raw HTML in the text is shown as text, never parsed, and
 * link URLs are filtered by react-markdown's default (no javascript:).
 * While live, the unfinished end of the text is closed (an open ** or `)
 * so it renders as it will once complete. Finished blocks are memoized:
 * a growing answer re-renders only its last block.
 */
export function Markdown({ text, live }: { text: string; live: boolean }) {
  const blocks = useMemo(() => splitBlocks(text), [text])
  return (
    <>
      {blocks.map((block, i) => {
        const last = i === blocks.length - 1
        return <Block key={i} text={live && last ? remend(block) : block} />
      })}
    </>
  )
}

const Block = memo(function Block({ text }: { text: string }) {
  return (
    <ReactMarkdown remarkPlugins={remarkPlugins} rehypePlugins={rehypePlugins} components={components}>
      {text}
    </ReactMarkdown>
  )
})

// CodeBlock is a <pre> with a button that copies the code as text.
function CodeBlock({ node, children, ...props }: ComponentProps<'pre'> & { node?: Element }) {
  const code = node ? textOf(node) : ''
  return (
    <div className="code-block">
      <pre {...props}>{children}</pre>
      <CopyButton text={code} label="Copy code" testId="copy-code" />
    </div>
  )
}

// textOf returns the text of a hast node, like textContent.
function textOf(node: Element | ElementContent): string {
  if (node.type === 'text') {
    return node.value
  }
  if (node.type === 'element') {
    return node.children.map(textOf).join('')
  }
  return ''
}
