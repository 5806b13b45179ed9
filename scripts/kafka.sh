#!/usr/bin/env bash
# The Kafka-protocol broker berth's tests publish to: tansu (installed by
# scripts/setup.sh), in-memory storage, on loopback.
#
#   scripts/kafka.sh start     start it unless it runs; wait until it accepts connections
#   scripts/kafka.sh stop      stop it and wait until it is gone
#   scripts/kafka.sh restart   stop, then start (in-memory storage: topics and records are lost)
#   scripts/kafka.sh addr      print its address, host:port
#   scripts/kafka.sh install   build and install the pinned tansu unless it is there (scripts/setup.sh runs it)
#
# The address is 127.0.0.1:9092, or 127.0.0.1:19092 when something else holds
# 9092; it is written to /run/berth-kafka.addr and kept across stop and
# restart. Log: /var/log/berth-kafka.log; pidfile: /run/berth-kafka.pid.
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_BIN=/usr/local/lib/berth-kafka/tansu-$TANSU_VERSION/bin/tansu
ADDR_FILE=/run/berth-kafka.addr
PID_FILE=/run/berth-kafka.pid
LOG_FILE=/var/log/berth-kafka.log
PORTS=(9092 19092)

log() { printf 'kafka: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# A process that runs (not gone, not a zombie nobody reaps); works without root too.
alive() {
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" && [ -n "$state" ] && [ "$state" != Z ]
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid of our broker, if it runs (a stale pidfile or a reused pid is not it).
broker_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
    [ -n "$pid" ] && alive "$pid" || return 1
    case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
        "$TANSU_BIN "*) ;;
        *) return 1 ;;
    esac
    printf '%s\n' "$pid"
}

recorded_port() {
    local addr
    addr="$(cat "$ADDR_FILE" 2>/dev/null)" || return 1
    [ -n "$addr" ] || return 1
    printf '%s\n' "${addr##*:}"
}

cmd_addr() {
    if [ ! -s "$ADDR_FILE" ]; then
        log "no broker address in $ADDR_FILE: run scripts/setup.sh"
        exit 1
    fi
    cat "$ADDR_FILE"
}

# Polls until the broker accepts connections on port $2 (or its process $1 ends).
wait_until_up() {
    local pid=$1 port=$2
    for _ in $(seq 1 200); do
        answers "$port" && return 0
        alive "$pid" || break
        sleep 0.05
    done
    answers "$port"
}

# tansu ships no prebuilt binary in a registry this project reaches (PyPI's
# "tansu" is an unrelated package), so it is built from crates.io: pinned,
# with its own Cargo.lock, and only the in-memory storage engine (dynostore).
cmd_install() {
    [ -x "$TANSU_BIN" ] && return 0
    command -v cargo >/dev/null 2>&1 || { log "cargo is needed to build tansu"; exit 1; }
    local build build_log=/var/log/berth-kafka-build.log
    build="$(mktemp -d "${TMPDIR:-/var/tmp}/berth-tansu.XXXXXX")"
    log "building tansu $TANSU_VERSION from crates.io, once (several minutes on 2 cores; log: $build_log)"
    as_root touch "$build_log" && as_root chmod a+w "$build_log"
    if ! env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR cargo install tansu --version "=$TANSU_VERSION" \
        --locked --no-default-features --features dynostore \
        --root "$build/root" --target-dir "$build/target" >>"$build_log" 2>&1 </dev/null; then
        tail -n 30 "$build_log" >&2
        rm -rf "$build"
        log "building tansu failed; see $build_log"
        exit 1
    fi
    as_root mkdir -p "$(dirname "$TANSU_BIN")"
    # Copied under a temporary name first: an interrupted copy is never taken for an install.
    as_root install -m 755 "$build/root/bin/tansu" "$TANSU_BIN.tmp"
    as_root mv -f "$TANSU_BIN.tmp" "$TANSU_BIN"
    rm -rf "$build"
}

cmd_start() {
    local pid port recorded p
    if pid="$(broker_pid)"; then
        port="$(recorded_port)" || { log "tansu runs (pid $pid) but $ADDR_FILE is missing"; exit 1; }
        wait_until_up "$pid" "$port" || { log "tansu (pid $pid) does not accept connections on $port; see $LOG_FILE"; exit 1; }
        return 0
    fi
    if [ ! -x "$TANSU_BIN" ]; then
        log "$TANSU_BIN is missing: run scripts/setup.sh"
        exit 1
    fi
    # Keep the recorded port (tests hold the address across a restart) unless
    # something else took it; else the first free one.
    port=""
    if recorded="$(recorded_port)" && ! answers "$recorded"; then
        port=$recorded
    else
        for p in "${PORTS[@]}"; do
            if ! answers "$p"; then port=$p; break; fi
        done
    fi
    if [ -z "$port" ]; then
        log "ports ${PORTS[*]} are all taken by something else"
        exit 1
    fi
    log "starting tansu $TANSU_VERSION on 127.0.0.1:$port (log: $LOG_FILE)"
    printf '127.0.0.1:%s\n' "$port" | as_root tee "$ADDR_FILE.tmp" >/dev/null
    as_root mv -f "$ADDR_FILE.tmp" "$ADDR_FILE"
    as_root rm -f "$PID_FILE"
    # setsid: the broker outlives the shell, session and process group that
    # started it. cd /: tansu reads a .env in its working directory; env -i:
    # nor does it pick up settings (LISTENER_URL, STORAGE_ENGINE, ...) from ours.
    as_root setsid -f env -i PATH=/usr/bin:/bin sh -c 'cd / && echo $$ >"$1" && exec "$2" broker \
        --listener-url "tcp://127.0.0.1:$3" --advertised-listener-url "tcp://127.0.0.1:$3" \
        --storage-engine memory://tansu/ >>"$4" 2>&1 </dev/null' \
        sh "$PID_FILE" "$TANSU_BIN" "$port" "$LOG_FILE"
    for _ in $(seq 1 100); do
        pid="$(broker_pid)" && break
        sleep 0.02
    done
    if [ -z "${pid:-}" ]; then
        log "tansu did not start; see $LOG_FILE"
        exit 1
    fi
    wait_until_up "$pid" "$port" || { log "tansu does not accept connections on $port; see $LOG_FILE"; exit 1; }
}

cmd_stop() {
    local pid port
    pid="$(broker_pid)" || { as_root rm -f "$PID_FILE"; return 0; }
    # SIGINT: tansu stops at once (on SIGTERM it gives open connections 5 s);
    # with in-memory storage there is nothing to flush.
    as_root kill -INT "$pid"
    for _ in $(seq 1 200); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        log "tansu (pid $pid) is still there; killing it"
        as_root kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.05; done
    fi
    as_root rm -f "$PID_FILE"
    # The port is free again when nothing accepts on it.
    if port="$(recorded_port)"; then
        for _ in $(seq 1 100); do
            answers "$port" || break
            sleep 0.05
        done
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    addr) cmd_addr ;;
    install) cmd_install ;;
    *)
        echo "usage: $0 start|stop|restart|addr|install" >&2
        exit 2
        ;;
esac
