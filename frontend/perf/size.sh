#!/usr/bin/env bash
# perf/size.sh: bytes (raw and gzip) a renderer adds to the page: all JS
# emitted for an entry that renders only it, minus React alone.
set -euo pipefail
cd "$(dirname "$0")/.."
for entry in none react-markdown streamdown; do
  out=$(mktemp -d)
  SIZE_ENTRY=$entry npx vite build --logLevel warn --outDir "$out" --emptyOutDir --config perf/size.config.ts >/dev/null 2>&1
  raw=$(cat "$out"/assets/*.js | wc -c)
  gz=$(cat "$out"/assets/*.js | gzip -9 | wc -c)
  first=$(gzip -9 <"$(ls -S "$out"/assets/size-*.js | head -1)" | wc -c)
  echo "$entry: all JS $raw bytes, $gz gzip (entry chunk $first gzip), $(ls "$out"/assets/*.js | wc -l) files"
  rm -rf "$out"
done
