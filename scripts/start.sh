#!/usr/bin/env bash
# `npm start`: builds the wasm package (pkg/web, dist/web.mjs), then serves the demo page.
# PORT overrides the port (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec node scripts/serve.mjs
