#!/usr/bin/env bash
# Builds the web UI into web/dist, which berth embeds when it is compiled
# (crates/web). Installs the front-end toolchain from the npm registry with
# the committed lockfile (npm ci), only when it changed; builds only when a
# source is newer than the last build. Idempotent and fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/../web"

log() { printf 'build-web: %s\n' "$*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "Node.js and npm are missing: run scripts/setup.sh (it installs Debian's nodejs and npm)"
    exit 1
fi
# Vite 7 wants Node.js 20.19 or later.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    log "Node.js $(node --version) is too old for the web UI's build: it needs 20.19 or later"
    exit 1
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing the front-end toolchain (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >&2
fi

newest_source() {
    find src index.html vite.config.ts tsconfig.json tsconfig.node.json package-lock.json -type f -newer dist/index.html 2>/dev/null | head -n 1
}
if [ -f dist/index.html ] && [ -z "$(newest_source)" ]; then
    exit 0
fi
log "building the web UI (vite build)"
npm run --silent build >&2
