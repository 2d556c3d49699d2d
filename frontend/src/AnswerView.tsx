import { useState } from 'react'
import { CopyButton } from './markdown/CopyButton.tsx'
import { Markdown } from './markdown/Markdown.tsx'
import { formatStats, type StreamStats } from './stats.ts'
import type { StreamStatus } from './useStream.ts'

export const statusLabels: Record<StreamStatus, string> = {
  idle: '',
  connecting: 'Connecting…',
  streaming: 'Streaming…',
  reconnecting: 'Reconnecting…',
  done: 'Done',
  length: 'Stopped at the length limit',
  stopped: 'Stopped',
  error: 'Error',
  interrupted: 'Interrupted',
}

export interface AnswerViewProps {
  live: boolean
  text: string
  status: StreamStatus
  error: string | null
  stats: StreamStats | null
  /** Regenerates this answer; absent when it can't be retried now. */
  onRetry?: () => void
}

/**
 * AnswerView shows an answer as Markdown, its status, and the actions on it:
 * copy, retry, and the statistics behind a details toggle.
 */
export function AnswerView({ live, text, status, error, stats, onRetry }: AnswerViewProps) {
  const [details, setDetails] = useState(false)
  const ended = !live || (status !== 'connecting' && status !== 'streaming' && status !== 'reconnecting')
  return (
    <article className="bubble assistant" data-testid="assistant-turn" data-status={status}>
      <div className={live ? 'answer live' : 'answer'} data-testid="answer">
        <Markdown text={text} live={live && !ended} />
      </div>
      {status === 'interrupted' && (
        <p className="note" data-testid="incomplete">
          The connection dropped: this answer is incomplete.
        </p>
      )}
      {status === 'error' && error && (
        <p className="error" role="alert" data-testid="error">
          {error}
        </p>
      )}
      <div className="meta">
        <span className={`status status-${status}`} data-testid="status">
          {statusLabels[status]}
        </span>
        {ended && (
          <span className="answer-actions">
            {text !== '' && <CopyButton text={text} label="Copy answer" testId="copy-answer" />}
            {onRetry && (
              <button type="button" data-testid="retry" onClick={onRetry}>
                Retry
              </button>
            )}
            {stats && (
              <button type="button" data-testid="details-toggle" aria-expanded={details} onClick={() => setDetails(!details)}>
                Details
              </button>
            )}
          </span>
        )}
      </div>
      {ended && details && stats && (
        <p className="stats" data-testid="stats">
          {formatStats(stats)}
        </p>
      )}
    </article>
  )
}
