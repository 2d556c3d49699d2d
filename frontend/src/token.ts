// The API token, kept in localStorage when the person asks to be remembered,
// else in sessionStorage (gone with the tab).

const KEY = 'streamrelay.token'

/** loadToken returns the saved token, or '' when there is none. */
export function loadToken(): string {
  return safe(() => localStorage.getItem(KEY) ?? sessionStorage.getItem(KEY) ?? '', '')
}

/** saveToken keeps token in localStorage if remember, else in sessionStorage. */
export function saveToken(token: string, remember: boolean) {
  safe(() => {
    localStorage.removeItem(KEY)
    sessionStorage.removeItem(KEY)
    ;(remember ? localStorage : sessionStorage).setItem(KEY, token)
  }, undefined)
}

/** clearToken forgets the token, e.g. after the server refused it. */
export function clearToken() {
  safe(() => {
    localStorage.removeItem(KEY)
    sessionStorage.removeItem(KEY)
  }, undefined)
}

/** withToken returns a fetch that sends token as a bearer token. */
export function withToken(token: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers)
    if (token !== '') {
      headers.set('Authorization', `Bearer ${token}`)
    }
    return fetch(input, { ...init, headers })
  }
}

// safe runs f, returning fallback where storage is unavailable (private
// modes, disabled cookies) instead of failing the page.
function safe<T>(f: () => T, fallback: T): T {
  try {
    return f()
  } catch {
    return fallback
  }
}
