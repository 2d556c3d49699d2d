import { code } from '@streamdown/code'
import { createRoot } from 'react-dom/client'
import { Streamdown } from 'streamdown'
createRoot(document.body).render(<Streamdown plugins={{ code }}>{document.title}</Streamdown>)
