import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The build of one perf/size-*.tsx entry, named by SIZE_ENTRY.
export default defineConfig({
  plugins: [react()],
  build: { rollupOptions: { input: `perf/size-${process.env.SIZE_ENTRY ?? 'none'}.tsx` } },
})
