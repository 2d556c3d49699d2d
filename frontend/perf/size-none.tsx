import { createRoot } from 'react-dom/client'
createRoot(document.body).render(<p>{document.title}</p>)
