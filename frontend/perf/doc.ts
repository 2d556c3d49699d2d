// longAnswer returns a Markdown answer of n lines mixing what models write:
// paragraphs with emphasis, lists, tables and fenced code.
export function longAnswer(n: number): string[] {
  const lines: string[] = []
  for (let i = 0; lines.length < n; i++) {
    switch (i % 5) {
      case 0:
        lines.push(`## Section ${i}`, '', `Some **bold** text, some *emphasis* and \`inline code\` in paragraph ${i}.`, '')
        break
      case 1:
        lines.push(`- item one of ${i}`, `- item **two** of ${i}`, `- item three with a [link](https://example.com/${i})`, '')
        break
      case 2:
        lines.push('```ts', `function f${i}(a: number): number {`, `  const b = a * ${i} // comment`, '  return b + 1', '}', '```', '')
        break
      case 3:
        lines.push('| name | value |', '|------|-------|', `| a${i} | ${i} |`, `| b${i} | ${i * 2} |`, '')
        break
      default:
        lines.push('```go', `func g${i}(s string) error {`, `\treturn fmt.Errorf("bad %q", s)`, '}', '```', '')
    }
  }
  return lines.slice(0, n).map((l) => l + '\n')
}
