/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// `npm run dev` proxies the API to a relay started separately (RELAY_URL).
const relay = process.env.RELAY_URL ?? 'http://127.0.0.1:8080'

export default defineConfig({
  plugins: [react()],
  // One chunk of about 570 kB (175 kB gzip), most of it the Markdown parser
  // and highlight.js's common languages; splitting it gains nothing here.
  build: { chunkSizeWarningLimit: 700 },
  server: { proxy: { '/message': relay, '/healthz': relay, '/config': relay } },
  test: { include: ['src/**/*.test.{ts,tsx}'] },
})
