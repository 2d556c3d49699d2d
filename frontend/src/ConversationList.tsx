import type { Conversation } from './conversations.ts'

export interface ConversationListProps {
  conversations: Conversation[]
  currentId: string
  onSelect: (id: string) => void
  onDelete: (id: string) => void
}

/** ConversationList lists the saved conversations, to switch to or delete. */
export function ConversationList({ conversations, currentId, onSelect, onDelete }: ConversationListProps) {
  return (
    <nav className="conversations" aria-label="Conversations" data-testid="conversation-list">
      {conversations.length === 0 ? (
        <p className="quiet">No saved conversations yet.</p>
      ) : (
        <ul>
          {conversations.map((c) => (
            <li key={c.id} className={c.id === currentId ? 'current' : undefined}>
              <button
                type="button"
                data-testid="conversation-item"
                aria-current={c.id === currentId ? 'page' : undefined}
                onClick={() => onSelect(c.id)}
              >
                {c.title}
              </button>
              <button
                type="button"
                className="delete"
                data-testid="delete-conversation"
                aria-label={`Delete “${c.title}”`}
                onClick={() => onDelete(c.id)}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
    </nav>
  )
}
