/** ServerConfig is what GET /config says about the server. */
export interface ServerConfig {
  model: string
  models: string[]
  demo: boolean
  /** 0: no limit. */
  max_input_chars: number
  /** 0: no limit. */
  max_messages: number
  tokens_required: boolean
}

/** fallbackConfig is assumed when /config cannot be read: no limits, no token. */
export const fallbackConfig: ServerConfig = {
  model: '',
  models: [],
  demo: false,
  max_input_chars: 0,
  max_messages: 0,
  tokens_required: false,
}

/** fetchConfig reads GET /config; it resolves with fallbackConfig on any failure. */
export async function fetchConfig(url = '/config', signal?: AbortSignal): Promise<ServerConfig> {
  try {
    const response = await fetch(url, { signal, headers: { Accept: 'application/json' } })
    if (!response.ok) {
      return fallbackConfig
    }
    const body = (await response.json()) as Partial<ServerConfig>
    return { ...fallbackConfig, ...body, models: Array.isArray(body.models) ? body.models : [] }
  } catch {
    return fallbackConfig
  }
}
