# shellcheck shell=bash
# Helpers shared by scripts/bench.sh, scripts/bench-install.sh, scripts/bench-sra.sh,
# scripts/bench-resources.sh and scripts/bench-scale.sh (sourced).
# The sourcing script sets BENCH_NAME (messages, state and lock files) and SOCK (berth's socket).

DOCKER_SOCK=/var/run/docker.sock
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/berth"
STATE_FILE="$CACHE_DIR/${BENCH_NAME:?set BENCH_NAME before sourcing bench-lib.sh}.state"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth/target}"

say() { printf '==> %s\n' "$*"; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

apt_install() { # $1: package
    say "installing $1"
    export DEBIAN_FRONTEND=noninteractive
    local apt_log
    apt_log=$(mktemp)
    apt-get install -y "$1" >"$apt_log" 2>&1 \
        || { apt-get update >>"$apt_log" 2>&1 && apt-get install -y "$1" >>"$apt_log" 2>&1; } \
        || { cat "$apt_log" >&2; rm -f "$apt_log"; die "could not install $1 (apt-get install -y $1)"; }
    rm -f "$apt_log"
}

remove_containers() { # $1: a label filter, e.g. berth.instance=<id>
    # 50 at a time, 4 such at once: one `docker rm -f` of 1,000 running
    # containers wedged Docker Engine 20.10 here (no answer, nothing logged).
    docker ps -aq --filter "label=$1" | xargs -r -n50 -P4 docker rm -f -v >/dev/null 2>&1 || true
}

stop_daemon() { # $1: pid, $2: work dir (only a berth daemon of that dir is stopped)
    local pid=$1 dir=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "daemon --root $dir/root" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

info() { curl -sf --unix-socket "$SOCK" http://x/v1/info; }
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print(str(v).lower() if isinstance(v,bool) else v)' "$1"; }

# Starts `$BERTH daemon` on $W (start_check_ms = 100, so installs are quick;
# $BENCH_TOML, if set, is appended to its berth.toml), waits until it is
# ready, and sets DAEMON_PID and INSTANCE. Calls the script's save_state
# after each, so an interrupted run can be cleaned up.
start_daemon() {
    mkdir -p "$W/root"
    printf 'start_check_ms = 100\n%s' "${BENCH_TOML:-}" >"$W/root/berth.toml"
    say "starting the daemon (work dir $W)"
    RUST_LOG="${RUST_LOG:-info}" "$BERTH" daemon --root "$W/root" --unit-dir "$W/units" --socket "$SOCK" \
        </dev/null >"$W/daemon.log" 2>&1 9>&- &
    DAEMON_PID=$!
    save_state
    local ready="" out
    for _ in $(seq 300); do
        kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited during start-up"
        if out=$(info 2>/dev/null) && [ "$(json_field ready <<<"$out")" = true ]; then
            ready=$out
            break
        fi
        sleep 0.1
    done
    [ -n "$ready" ] || die "the daemon did not become ready within 30 s"
    INSTANCE=$(json_field instance <<<"$ready")
    [ -n "$INSTANCE" ] && [ "$INSTANCE" != None ] || die "no instance in /v1/info: $ready"
    save_state
}

# What bench-scale.sh and bench-resources.sh need: the docker CLI (the
# baseline), python3, cargo, curl and hyperfine (installed if missing), bash 5
# ($EPOCHREALTIME), and an engine that answers.
require_bench_tools() {
    command -v docker >/dev/null || die "the docker CLI is needed (it is the comparison baseline)"
    command -v python3 >/dev/null || die "python3 is needed"
    command -v cargo >/dev/null || die "cargo is needed"
    command -v curl >/dev/null || apt_install curl
    require_engine
    command -v hyperfine >/dev/null || apt_install hyperfine
    [ -n "${EPOCHREALTIME:-}" ] || die "bash 5 is needed (\$EPOCHREALTIME)"
}

# The engine must answer on $DOCKER_SOCK.
require_engine() {
    curl -sf --unix-socket "$DOCKER_SOCK" http://x/_ping >/dev/null \
        || die "the Docker Engine does not answer on $DOCKER_SOCK (start it: scripts/setup.sh)"
}

# One run of a script at a time.
take_lock() {
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/$BENCH_NAME.lock"
    flock -n 9 || die "another scripts/$BENCH_NAME.sh is running (lock $CACHE_DIR/$BENCH_NAME.lock)"
}

# The end of every script's cleanup: keeps the daemon log if asked, shows the
# logs of a failed run, removes the work directory and the state file, exits.
# $1: the exit status.
finish_cleanup() {
    local status=$1 log
    [ -z "${BENCH_DAEMON_LOG:-}" ] || cp "$W/daemon.log" "$BENCH_DAEMON_LOG"
    if [ "$status" -ne 0 ]; then
        for log in run.log daemon.log; do
            [ -s "$W/$log" ] || continue
            echo "--- last lines of $log:" >&2
            tail -n 30 "$W/$log" >&2
        done
    fi
    rm -rf "$W"
    rm -f "$STATE_FILE"
    exit "$status"
}

# Runs the script's `cleanup` at exit, also after a signal.
trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    trap 'exit 141' PIPE
}

# Builds berth and the testkit's tools in release mode; sets BERTH, MKIMAGE
# and RAW_EXEC, and checks that each is there.
build_release_binaries() {
    say "building release binaries (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release --locked --quiet -p berth-cli -p berth-testkit --bins
    BERTH="$CARGO_TARGET_DIR/release/berth"
    MKIMAGE="$CARGO_TARGET_DIR/release/berth-mkimage"
    RAW_EXEC="$CARGO_TARGET_DIR/release/berth-raw-exec"
    local bin
    for bin in "$BERTH" "$MKIMAGE" "$RAW_EXEC"; do
        [ -x "$bin" ] || die "the build produced no $bin"
    done
}
