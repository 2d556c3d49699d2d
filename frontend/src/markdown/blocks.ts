// splitBlocks cuts Markdown into top-level blocks that can be rendered on
// their own, so that a growing answer re-renders only its last block.

const FENCE = /^ {0,3}(`{3,}|~{3,})/

/**
 * splitBlocks returns text cut at blank lines that are followed by a line
 * starting in the first column, outside fenced code blocks. Joined, the
 * blocks give back text exactly. Only the last block can still change while
 * text grows at its end.
 */
export function splitBlocks(text: string): string[] {
  const lines = text.split('\n')
  const blocks: string[] = []
  let start = 0 // index in text where the current block starts
  let offset = 0 // index in text where line i starts
  let fence: string | null = null
  let blank = false
  for (const line of lines) {
    const opener = FENCE.exec(line)?.[1]
    if (fence !== null) {
      if (opener && opener[0] === fence[0] && opener.length >= fence.length && line.trim() === opener) {
        fence = null
      }
    } else {
      if (blank && offset > start && /^\S/.test(line)) {
        blocks.push(text.slice(start, offset))
        start = offset
      }
      if (opener) {
        fence = opener
      }
    }
    blank = fence === null && line.trim() === ''
    offset += line.length + 1
  }
  if (start < text.length || blocks.length === 0) {
    blocks.push(text.slice(start))
  }
  return blocks
}
