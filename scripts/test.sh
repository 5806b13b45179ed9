#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against the real
# Docker Engine (set up first when missing). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# The web UI first: berth embeds web/dist when it is compiled.
bash scripts/build-web.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth/target}"
cargo test --workspace --locked 2>&1
