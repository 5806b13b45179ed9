#!/usr/bin/env bash
# berth's main job on the embedded defaults: sets up what is missing, builds
# berth, starts a daemon whose state lives under ./.berth-demo, installs a
# sample app from an image archive built offline, and lists it. The daemon
# also serves the web UI on http://127.0.0.1:8470.
# Run it again at any time: it replaces the demo app and reuses the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build-web.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth/target}"
cargo build --quiet -p berth-cli -p berth-testkit
BIN="$CARGO_TARGET_DIR/debug"
DEMO="$PWD/.berth-demo"
export BERTH_SOCKET="$DEMO/berth.sock"
mkdir -p "$DEMO"

if ! "$BIN/berth" list >/dev/null 2>&1; then
    echo "== starting berth daemon (root $DEMO/root, log $DEMO/daemon.log)"
    nohup "$BIN/berth" daemon --root "$DEMO/root" --unit-dir "$DEMO/units" --web 127.0.0.1:8470 >>"$DEMO/daemon.log" 2>&1 &
    echo $! >"$DEMO/daemon.pid"
    for _ in $(seq 1 100); do
        "$BIN/berth" list >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

echo "== building a sample image archive offline (busybox-static)"
"$BIN/berth-mkimage" --tag berth-demo/hello:1 --gzip --out "$DEMO/hello.tar.gz" >/dev/null

if "$BIN/berth" show demo-hello >/dev/null 2>&1; then
    "$BIN/berth" uninstall demo-hello -y >/dev/null
fi
echo "== berth install demo-hello $DEMO/hello.tar.gz --args \"-e GREETING=hello\" -y"
"$BIN/berth" install demo-hello "$DEMO/hello.tar.gz" --args "-e GREETING=hello" -y >/dev/null
echo "== berth list"
"$BIN/berth" list
cat <<EOT

The daemon keeps running. Try:
  export BERTH_SOCKET=$BERTH_SOCKET
  $BIN/berth show demo-hello
  $BIN/berth logs demo-hello
  $BIN/berth uninstall demo-hello -y
The web UI is on http://127.0.0.1:8470 once it has an administrator:
  $BIN/berth web passwd
Stop the daemon with: kill \$(cat $DEMO/daemon.pid)
EOT
