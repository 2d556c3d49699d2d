/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// `npm run dev` proxies the API to a relay started separately (RELAY_URL).
const relay = process.env.RELAY_URL ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [react()],
  server: { proxy: { '/message': relay, '/healthz': relay } },
  test: { include: ['src/**/*.test.{ts,tsx}'] },
})
