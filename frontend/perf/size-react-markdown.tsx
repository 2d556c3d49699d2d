import { createRoot } from 'react-dom/client'
import { Markdown } from '../src/markdown/Markdown.tsx'
createRoot(document.body).render(<Markdown text={document.title} live />)
