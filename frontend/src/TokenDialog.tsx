import { type FormEvent, useEffect, useRef, useState } from 'react'

export interface TokenDialogProps {
  /** Why the dialog is open: first use, or the server refused the token. */
  refused: boolean
  onSave: (token: string, remember: boolean) => void
}

/** TokenDialog asks for the API token the server requires. */
export function TokenDialog({ refused, onSave }: TokenDialogProps) {
  const ref = useRef<HTMLDialogElement>(null)
  const [token, setToken] = useState('')
  const [remember, setRemember] = useState(true)
  useEffect(() => {
    const dialog = ref.current
    if (dialog && !dialog.open) {
      dialog.showModal()
    }
  }, [])
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (token.trim() !== '') {
      onSave(token.trim(), remember)
    }
  }
  return (
    <dialog ref={ref} className="token-dialog" data-testid="token-dialog" aria-labelledby="token-title" onCancel={(e) => e.preventDefault()}>
      <form onSubmit={submit}>
        <h2 id="token-title">API token</h2>
        <p>{refused ? 'The server did not accept that token. Enter another one.' : 'This server needs an API token.'}</p>
        <label>
          API token
          <input
            type="password"
            data-testid="token-input"
            autoComplete="off"
            autoFocus
            value={token}
            onChange={(e) => setToken(e.target.value)}
          />
        </label>
        <label className="check">
          <input type="checkbox" data-testid="token-remember" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
          Remember on this device
        </label>
        <button type="submit" data-testid="token-save" disabled={token.trim() === ''}>
          Save
        </button>
      </form>
    </dialog>
  )
}
