import react from '@vitejs/plugin-react'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [react()],
  test: { include: ['perf/**/*.perf.tsx'], environment: 'happy-dom', fileParallelism: false },
})
