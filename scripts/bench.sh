#!/usr/bin/env bash
# berth benchmark: `berth list --output json` with 200 installed apps against
# `docker ps -a --filter label=berth.app` (and the raw Engine API), measured
# side by side in one hyperfine run, plus the daemon's resident memory idle
# and with 200 apps, a `/metrics` scrape (once the per-app CPU and memory
# samples are in it) and a read of the whole event log with those apps, the
# web UI's first load with those apps (web/e2e/first-load.mjs, headless
# chromium), and a follower of `/v1/events` while at least 10,000 events are
# generated (reinstalling the apps), with the Docker Engine's event stream for
# the same containers beside it. Prints the figures and pass/fail against the
# targets (see docs/PERFORMANCE.md); it exits 0 whether or not the targets are
# met, and non-zero only when something broke.
#
# Usage, from the repository root:   scripts/bench.sh
# Needs the Docker Engine, curl, python3, cargo, Node.js (scripts/setup.sh),
# and Debian's chromium (installed with apt-get if missing).
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/berth/target)
#   BENCH_APPS        number of apps to install (default 200)
#   BENCH_RUNS        hyperfine runs per command (default 30)
#   BENCH_EVENTS      events to generate for the follower, at least (default 10000)
#   BENCH_EXPORT      if set, the hyperfine JSON is copied to this path
#   BENCH_DAEMON_LOG  if set, the daemon's log is copied to this path at exit
#   BERTH_UI_CHROMIUM the browser first-load.mjs drives (default /usr/bin/chromium)
#
# Everything the run creates (daemon, followers, containers, the sample image,
# the work directory) is removed on exit. If a run was killed with SIGKILL, the
# next run finds its state file and removes its leftovers first.
set -euo pipefail

APPS="${BENCH_APPS:-200}"
RUNS="${BENCH_RUNS:-30}"
EVENTS="${BENCH_EVENTS:-10000}"
STATS_INTERVAL=2 # [metrics] stats_interval_secs of the bench daemon
TARGET_RSS_MIB=30
IMAGE_TAG="berth-bench/sample:1"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

BENCH_NAME=bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

stop_follower() { # $1: pid, $2: work dir (only a process started with that dir in its command line is stopped)
    local pid=$1 dir=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 0
    kill -TERM "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- prerequisites
command -v docker >/dev/null || die "the docker CLI is needed (it is the comparison baseline)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
command -v cargo >/dev/null || die "cargo is needed"
require_engine
command -v hyperfine >/dev/null || apt_install hyperfine
command -v node >/dev/null || die "Node.js is needed for the web UI's build and first-load test (scripts/setup.sh installs it)"
CHROMIUM="${BERTH_UI_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || apt_install chromium
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM"

# -------------------------------------------------- one run at a time, leftovers
take_lock

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        for pid in ${OLD_FOLLOWERS:-}; do stop_follower "$pid" "${OLD_W:-/nonexistent}"; done
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_INSTANCE:-}" ]; then remove_containers "berth.instance=$OLD_INSTANCE"; fi
        if [ -n "${OLD_IMAGE:-}" ]; then docker rmi -f "$OLD_IMAGE" >/dev/null 2>&1 || true; fi
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
# The web UI first: the release build embeds web/dist.
bash scripts/build-web.sh
[ -d web/node_modules/playwright-core ] || die "web/node_modules/playwright-core is missing (scripts/build-web.sh installs it)"
build_release_binaries
LOAD_MEASURED=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average $LOAD_MEASURED (at the start: $LOAD_START)"

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
INSTANCE=""
IMAGE_ID=""
FOLLOWERS="" # pids of the event followers (curl and their readers)

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_INSTANCE=%q\nOLD_IMAGE=%q\nOLD_FOLLOWERS=%q\n' \
        "$W" "$DAEMON_PID" "$INSTANCE" "$IMAGE_ID" "$FOLLOWERS" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    set +e
    say "cleaning up"
    for pid in $FOLLOWERS; do stop_follower "$pid" "$W"; done
    stop_daemon "$DAEMON_PID" "$W"
    [ -n "$INSTANCE" ] && remove_containers "berth.instance=$INSTANCE"
    [ -n "$IMAGE_ID" ] && docker rmi -f "$IMAGE_ID" >/dev/null 2>&1
    finish_cleanup "$status"
}
trap_cleanup
save_state

# Names the run needs must be free: a container of another berth instance
# with one of them would make the installs fail.
taken=$(docker ps -a --format '{{.Names}}' | grep -cE '^bench-[0-9]{3}$' || true)
[ "$taken" -eq 0 ] || die "$taken container(s) named bench-NNN already exist; remove them first (docker ps -a --filter name=bench-)"

rss_mib() { # VmRSS of the daemon in MiB, one decimal
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status"
}
hwm_mib() { # VmHWM (peak RSS) of the daemon in MiB, one decimal
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status"
}

# -------------------------------------------------------------------- daemon
# Per-app CPU and memory sampled every $STATS_INTERVAL s (instead of 15), so
# that the scrape below has them soon; the web UI on a free loopback port.
WEB_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WEB_URL="http://127.0.0.1:$WEB_PORT"
BENCH_TOML=$(printf '[metrics]\nstats_interval_secs = %d\n[web]\nlisten = "127.0.0.1:%d"\n' "$STATS_INTERVAL" "$WEB_PORT")
start_daemon
sleep 2
RSS_IDLE=$(rss_mib)
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE, idle RSS $RSS_IDLE MiB, web UI on $WEB_URL"

# The UI's administrator (a password of this run only).
UI_USER=admin
UI_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
printf '%s\n' "$UI_PASSWORD" | "$BERTH" --socket "$SOCK" web passwd --user "$UI_USER" --password-stdin >/dev/null \
    || die "berth web passwd failed"
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$WEB_URL/ui/session")" = 401 ] && break
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$WEB_URL/ui/session")" = 401 ] || die "the web UI does not answer on $WEB_URL"

# -------------------------------------------------------------- 200 apps
IMAGE_ID=$("$MKIMAGE" --tag "$IMAGE_TAG" --out "$W/sample.tar" --label berth.test.sweep=1)
save_state
say "sample image $IMAGE_TAG ($IMAGE_ID, $(du -h "$W/sample.tar" | cut -f1)); installing $APPS apps, 4 at a time"
install_start=$SECONDS
batch=50
for ((first = 1; first <= APPS; first += batch)); do
    last=$((first + batch - 1))
    ((last > APPS)) && last=$APPS
    if ! seq -f 'bench-%03g' "$first" "$last" \
        | xargs -P4 -I{} "$BERTH" --socket "$SOCK" install {} "$W/sample.tar" -y >>"$W/install.log" 2>&1 9>&-; then
        tail -n 20 "$W/install.log" >&2
        die "an install failed (apps $first..$last)"
    fi
    printf '    %3d/%d installed  (%d s, daemon RSS %s MiB)\n' "$last" "$APPS" "$((SECONDS - install_start))" "$(rss_mib)"
done
INSTALL_SECS=$((SECONDS - install_start))

# Settle, and see what the daemon costs while nothing happens.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
SETTLE=10
ticks_before=$(cpu_ticks)
sleep "$SETTLE"
IDLE_CPU_MS=$(( ($(cpu_ticks) - ticks_before) * 1000 / $(getconf CLK_TCK) ))
RSS_APPS=$(rss_mib)
"$BERTH" --socket "$SOCK" list --output json >"$W/list.json"
BERTH_COUNT=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$W/list.json")
RUNNING=$(python3 -c 'import json,sys; print(sum(a["state"] == "running" for a in json.load(open(sys.argv[1]))))' "$W/list.json")
DOCKER_COUNT=$(docker ps -a -q --filter label=berth.app | wc -l)
say "$BERTH_COUNT apps installed in ${INSTALL_SECS}s ($RUNNING running); docker ps sees $DOCKER_COUNT berth containers; daemon RSS $RSS_APPS MiB"
[ "$BERTH_COUNT" -eq "$APPS" ] || die "berth lists $BERTH_COUNT apps, expected $APPS"

# The scrape measured below must hold every running app's CPU and memory
# samples: berth_app_cpu_cores appears from an app's second sample on.
series() { # $1: metric name; prints how many apps the scrape has it for
    grep -c "^$1{" "$W/scrape.txt" || true
}
say "waiting until /metrics has the CPU and memory samples of the $RUNNING running apps (sampled every $STATS_INTERVAL s)"
stats_start=$SECONDS
while :; do
    curl -sf --unix-socket "$SOCK" http://x/metrics >"$W/scrape.txt" || die "GET /metrics failed"
    CPU_SERIES=$(series berth_app_cpu_cores)
    MEM_SERIES=$(series berth_app_memory_bytes)
    [ "$CPU_SERIES" -ge "$RUNNING" ] && [ "$MEM_SERIES" -ge "$RUNNING" ] && break
    ((SECONDS - stats_start < 120)) \
        || die "after 120 s /metrics has berth_app_cpu_cores for $CPU_SERIES and berth_app_memory_bytes for $MEM_SERIES of $RUNNING apps"
    sleep 0.5
done
STATS_WAIT=$((SECONDS - stats_start))
say "/metrics has berth_app_cpu_cores for $CPU_SERIES apps and berth_app_memory_bytes for $MEM_SERIES (waited ${STATS_WAIT} s)"

# ---------------------------------------------------------------- hyperfine
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # quoting for hyperfine -N (shell-words)
FILTER='%7B%22label%22%3A%5B%22berth.app%22%5D%7D' # {"label":["berth.app"]}
say "hyperfine: --warmup 3 --runs $RUNS -N"
hyperfine -N --warmup 3 --runs "$RUNS" --style basic --export-json "$W/hyperfine.json" \
    -n "berth list --output json" "$(q "$BERTH") --socket $(q "$SOCK") list --output json" \
    -n "docker ps -a --filter label=berth.app" "docker ps -a --filter label=berth.app" \
    -n "curl engine /containers/json (raw API)" \
    "curl -sf --unix-socket $DOCKER_SOCK 'http://x/v1.41/containers/json?all=1&filters=$FILTER'" \
    -n "curl berth /v1/apps (raw API)" "curl -sf --unix-socket $(q "$SOCK") http://x/v1/apps" \
    -n "curl berth /metrics (scrape)" "curl -sf --unix-socket $(q "$SOCK") http://x/metrics" \
    -n "berth events --output json (whole log)" "$(q "$BERTH") --socket $(q "$SOCK") events --output json"
[ -z "${BENCH_EXPORT:-}" ] || cp "$W/hyperfine.json" "$BENCH_EXPORT"

# The same two answers without any process start-up: one client, a new
# connection per request (as the CLI makes), requests alternating between
# berth and the engine so that both see the same background load.
say "request latency over the sockets (python3 client, 200 requests each, alternating)"
python3 - "$SOCK" "$DOCKER_SOCK" "/v1.41/containers/json?all=1&filters=$FILTER" >"$W/requests.txt" <<'PY'
import http.client, socket, statistics, sys, time
berth_sock, docker_sock, docker_path = sys.argv[1:]
class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("x")
        self.unix_path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)
def get(sock, path):
    start = time.perf_counter()
    c = Unix(sock)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        sys.exit(f"GET {path}: HTTP {r.status}")
    return time.perf_counter() - start, len(body)
targets = [("berth GET /v1/apps", berth_sock, "/v1/apps"), ("engine GET /containers/json", docker_sock, docker_path),
           ("berth GET /metrics", berth_sock, "/metrics")]
times = {name: [] for name, _, _ in targets}
size = {}
for i in range(3 + 200):
    for name, sock, path in targets:
        t, n = get(sock, path)
        if i >= 3:
            times[name].append(t * 1e3)
            size[name] = n
for name, _, _ in targets:
    t = sorted(times[name])
    print(f"{name}\t{statistics.mean(t):.2f}\t{statistics.median(t):.2f}\t{t[int(len(t) * 0.95)]:.2f}\t{size[name]}")
PY
RSS_AFTER=$(rss_mib)
RSS_PEAK=$(hwm_mib)

# -------------------------------------------------------- the UI's first load
# web/e2e/first-load.mjs: the medians of 5 cold loads of the dashboard (all
# the apps listed) in headless chromium, signed in as the administrator.
say "the web UI's first load with $APPS apps (web/e2e/first-load.mjs, 5 cold loads in $CHROMIUM)"
(cd web && BERTH_UI_URL="$WEB_URL" BERTH_UI_USER="$UI_USER" BERTH_UI_PASSWORD="$UI_PASSWORD" BERTH_UI_CHROMIUM="$CHROMIUM" \
    node e2e/first-load.mjs) >"$W/first-load.json" 2>"$W/first-load.log" 9>&- \
    || { cat "$W/first-load.log" >&2; die "web/e2e/first-load.mjs failed"; }
tail -n 1 "$W/first-load.json" >"$W/ui.json"
say "first load: $(cat "$W/ui.json")"

# ---------------------------------------------------- the events follower
# Followers of berth's /v1/events (from the last stored id on) and of the
# engine's /events (this instance's containers), both started before any
# event is generated; each is curl writing into a FIFO read by a python3
# reader that stamps every line with the time it read it (µs since the epoch).
cat >"$W/stamp.py" <<'PY'
import sys, time
with open(sys.argv[1], "w", buffering=1) as out:
    for line in sys.stdin.buffer:
        out.write(f"{time.time_ns() // 1000} {line.decode('utf-8', 'replace').rstrip()}\n")
PY
last_stored() { # the id of the newest stored event after $1 (all that are kept without $1); $1, or 0, if none
    local newest
    newest=$("$BERTH" --socket "$SOCK" events ${1:+--since "$1"} --output json | tail -n 1)
    if [ -n "$newest" ]; then json_field id <<<"$newest"; else echo "${1:-0}"; fi
}
CURLS=""
READERS=""
follow() { # $1: name, $2: unix socket, $3: path and query
    mkfifo "$W/$1.fifo"
    python3 "$W/stamp.py" "$W/$1.txt" <"$W/$1.fifo" 9>&- &
    READERS="$READERS $!"
    curl -sN --unix-socket "$2" -D "$W/$1.headers" -o "$W/$1.fifo" "http://x$3" 9>&- &
    CURLS="$CURLS $!"
    FOLLOWERS="$CURLS $READERS"
    save_state
}
EVENTS_FROM=$(last_stored)
ENGINE_SINCE=$(date +%s.%N) # the engine replays what it sent since then: nothing falls before its follower connects
ENGINE_FILTER=$(python3 -c 'import json, sys, urllib.parse; print(urllib.parse.quote(json.dumps({"type": ["container"], "label": ["berth.instance=" + sys.argv[1]]})))' "$INSTANCE")
follow berth "$SOCK" "/v1/events?follow=true&since=$EVENTS_FROM"
follow engine "$DOCKER_SOCK" "/v1.41/events?since=$ENGINE_SINCE&filters=$ENGINE_FILTER"
# Both answered (their headers are in), so no event's delay includes a follower's start-up.
connect_start=$SECONDS
until grep -qs '^HTTP/1.1 200' "$W/berth.headers" && grep -qs '^HTTP/1.1 200' "$W/engine.headers"; do
    ((SECONDS - connect_start < 30)) || die "the followers did not connect within 30 s: $(cat "$W"/*.headers 2>/dev/null)"
    sleep 0.1
done
# A restart is only two events (app.starting, app.running) for a container
# start, which the engine does about 5 times a second on two cores; an
# uninstall and a new install of an app are 13 (three of the uninstall, the
# install's app.installing, its journal steps and app.running) for one start.
# So each round reinstalls every app, 8 at a time.
say "followers started (berth after event $EVENTS_FROM; the engine's since $ENGINE_SINCE); generating at least $EVENTS events: reinstalling the $APPS apps (uninstall, install), 8 at a time, until the store holds them"

GEN_START=$EPOCHREALTIME
ROUNDS=0
GENERATED=0
while ((GENERATED < EVENTS)); do
    ROUNDS=$((ROUNDS + 1))
    # shellcheck disable=SC2016 # expanded by sh -c
    if ! seq -f 'bench-%03g' 1 "$APPS" | xargs -P8 -I{} sh -c \
        '"$0" --socket "$1" uninstall "$3" -y && "$0" --socket "$1" install "$3" "$2" -y' "$BERTH" "$SOCK" "$W/sample.tar" {} \
        >>"$W/reinstall.log" 2>&1 9>&-; then
        tail -n 20 "$W/reinstall.log" >&2
        die "an uninstall or install failed (round $ROUNDS)"
    fi
    GENERATED=$("$BERTH" --socket "$SOCK" events --since "$EVENTS_FROM" --output json | wc -l)
    printf '    round %d: %d reinstalls, %d events stored after %d  (%s s, daemon RSS %s MiB)\n' "$ROUNDS" "$((ROUNDS * APPS))" \
        "$GENERATED" "$EVENTS_FROM" "$(awk -v a="$GEN_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" "$(rss_mib)"
    ((ROUNDS < 100)) || die "100 rounds of reinstalls made only $GENERATED events"
done
GEN_END=$EPOCHREALTIME

# The last event is the newest once nothing new has been stored for 2 s
# (the engine's events about the last installs still come in after they return).
say "waiting until no new event is stored for 2 s"
quiet_start=$SECONDS
EVENTS_TO=$(last_stored "$EVENTS_FROM")
stable=0
while ((stable < 4)); do
    sleep 0.5
    now=$(last_stored "$EVENTS_TO")
    if [ "$now" = "$EVENTS_TO" ]; then stable=$((stable + 1)); else stable=0 EVENTS_TO=$now; fi
    ((SECONDS - quiet_start < 120)) || die "events were still being stored after 120 s"
done
"$BERTH" --socket "$SOCK" events --since "$EVENTS_FROM" --output json >"$W/stored.jsonl"
AFTER_COUNT=$("$BERTH" --socket "$SOCK" list --output json | python3 -c 'import json,sys; print(sum(a["state"] == "running" for a in json.load(sys.stdin)))')
[ "$AFTER_COUNT" -eq "$APPS" ] || die "after the reinstalls $AFTER_COUNT of $APPS apps run"
say "$(wc -l <"$W/stored.jsonl") events stored after $EVENTS_FROM, the last $EVENTS_TO; waiting for the berth follower to receive it"

follower_has() { grep -q "^[0-9]* id: *$1\$" "$W/berth.txt"; }
follow_start=$SECONDS
until follower_has "$EVENTS_TO"; do
    if ((SECONDS - follow_start >= 60)); then
        say "the berth follower did not receive event $EVENTS_TO within 60 s"
        break
    fi
    sleep 0.1
done
# The engine's follower: until it has had nothing new for 2 s.
lines=-1
until [ "$lines" -eq "$(wc -l <"$W/engine.txt")" ]; do
    lines=$(wc -l <"$W/engine.txt")
    sleep 2
done
# curl first; each reader ends at the end of its FIFO, once it has stamped everything.
for pid in $CURLS; do stop_follower "$pid" "$W"; done
for pid in $CURLS $READERS; do wait "$pid" 2>/dev/null || true; done
FOLLOWERS=""
save_state
RSS_END=$(rss_mib)
RSS_PEAK_END=$(hwm_mib)

python3 - "$W/stored.jsonl" "$W/berth.txt" "$W/engine.txt" "$GEN_START" "$GEN_END" "$ROUNDS" "$APPS" >"$W/events.json" <<'PY'
import collections, json, statistics, sys
stored_path, berth_path, engine_path, gen_start, gen_end, rounds, apps = sys.argv[1:]
stored = [json.loads(line) for line in open(stored_path)]
at = {e["id"]: e["at"] for e in stored}

def lines(path):
    for line in open(path):
        stamp, _, text = line.rstrip("\n").partition(" ")
        yield int(stamp) / 1000.0, text  # ms since the epoch, the line

# Server-sent events: fields until a blank line, which dispatches the event.
received, gaps, fields = [], 0, {}
for ms, text in lines(berth_path):
    if text == "":
        if fields.get("event") == "gap":
            gaps += 1
        elif "id" in fields:
            received.append((int(fields["id"]), ms))
        fields = {}
    elif not text.startswith(":"):
        name, _, value = text.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
ids = [i for i, _ in received]
stored_ids = [e["id"] for e in stored]
lags = sorted(ms - at[i] for i, ms in received if i in at)

def spread(values):
    v = sorted(values)
    return {"median": statistics.median(v), "p95": v[int(len(v) * 0.95)], "max": v[-1]} if v else None

out = {
    "rounds": int(rounds), "reinstalls": int(rounds) * int(apps),
    "generate_s": float(gen_end) - float(gen_start),
    "stored": len(stored), "first_id": stored_ids[0] if stored else None, "last_id": stored_ids[-1] if stored else None,
    "kinds": collections.Counter(e["kind"] for e in stored).most_common(),
    "received": len(ids), "exact": ids == stored_ids,
    "missing": len(set(stored_ids) - set(ids)), "duplicated": len(ids) - len(set(ids)),
    "out_of_order": sum(1 for a, b in zip(ids, ids[1:]) if b <= a), "not_stored": len(set(ids) - set(stored_ids)),
    "gaps": gaps,
}
if stored and received:
    out["stored_span_s"] = (stored[-1]["at"] - stored[0]["at"]) / 1000
    out["received_span_s"] = (received[-1][1] - received[0][1]) / 1000
    out["delivered_per_s"] = len(ids) / out["received_span_s"] if out["received_span_s"] > 0 else None
    last = dict(received).get(stored_ids[-1])
    out["last_lag_ms"] = last - stored[-1]["at"] if last is not None else None
    out["lag_ms"] = spread(lags)

# The engine's events: one JSON object a line, stamped with timeNano.
engine = [(ms, json.loads(text)) for ms, text in lines(engine_path) if text.strip()]
if engine:
    elags = [ms - e["timeNano"] / 1e6 for ms, e in engine]
    out["engine"] = {
        "events": len(engine),
        "actions": collections.Counter(e.get("Action", e.get("status", "?")) for _, e in engine).most_common(),
        "span_s": (engine[-1][1]["timeNano"] - engine[0][1]["timeNano"]) / 1e9,
        "received_span_s": (engine[-1][0] - engine[0][0]) / 1000,
        "last_lag_ms": elags[-1],
        "lag_ms": spread(elags),
    }
    span = out["engine"]["received_span_s"]
    out["engine"]["delivered_per_s"] = len(engine) / span if span > 0 else None
else:
    out["engine"] = {"events": 0}
print(json.dumps(out))
PY

# ------------------------------------------------------------------ summary
python3 - "$W/hyperfine.json" "$APPS" "$RSS_IDLE" "$RSS_APPS" "$RSS_AFTER" "$RSS_PEAK" "$TARGET_RSS_MIB" \
    "$DOCKER_COUNT" "$INSTALL_SECS" "$W/requests.txt" "$IDLE_CPU_MS" "$SETTLE" \
    "$STATS_INTERVAL" "$CPU_SERIES" "$MEM_SERIES" "$STATS_WAIT" "$W/ui.json" "$W/events.json" "$RSS_END" "$RSS_PEAK_END" <<'PY'
import json, sys
(path, apps, idle, with_apps, after, peak, target, docker_count, install_secs, requests, idle_cpu, settle,
 stats_interval, cpu_series, mem_series, stats_wait, ui_path, events_path, rss_end, peak_end) = sys.argv[1:]
results = json.load(open(path))["results"]
base = results[0]
docker = results[1]
print()
print(f"list with {apps} apps (hyperfine, {len(base['times'])} runs each, no shell)")
print(f"  {'command':<42} {'mean ms':>9} {'stddev':>8} {'median':>8} {'min':>8}  {'vs berth list':>13}")
for r in results:
    ratio = r["mean"] / base["mean"]
    print(f"  {r['command']:<42} {r['mean']*1e3:9.2f} {r['stddev']*1e3:8.2f} {r['median']*1e3:8.2f} "
          f"{r['min']*1e3:8.2f}  {ratio:12.2f}x")
print()
print("one request over the socket, no process start-up (python3 client, 200 each)")
print(f"  {'request':<42} {'mean ms':>9} {'median':>8} {'p95':>8} {'bytes':>8}")
rows = [line.split("\t") for line in open(requests).read().splitlines()]
for name, mean, median, p95, size in rows:
    print(f"  {name:<42} {float(mean):9.2f} {float(median):8.2f} {float(p95):8.2f} {int(size):8d}")
request_ratio = float(rows[1][1]) / float(rows[0][1])
metrics_row = rows[2]
speedup = docker["mean"] / base["mean"]
rss_worst = max(float(with_apps), float(after))
list_ok = base["mean"] < docker["mean"]
rss_ok = rss_worst < float(target)
print()
print("summary")
print(f"  berth list --output json       {base['mean']*1e3:8.2f} ms ± {base['stddev']*1e3:.2f}")
print(f"  docker ps -a --filter ...      {docker['mean']*1e3:8.2f} ms ± {docker['stddev']*1e3:.2f}  ({docker_count} containers)")
print(f"  ratio docker ps / berth list   {speedup:8.2f}x")
print(f"  ratio engine / berth, request  {request_ratio:8.2f}x  (raw socket requests, see above)")
print(f"  /metrics scrape, {apps} apps     {float(metrics_row[1]):8.2f} ms mean, {int(metrics_row[4])} bytes, with "
      f"berth_app_cpu_cores for {cpu_series} apps and berth_app_memory_bytes for {mem_series} "
      f"(sampled every {stats_interval} s; present {stats_wait} s after the settle)")
print(f"  daemon RSS idle (0 apps)       {idle:>8} MiB")
print(f"  daemon RSS with {apps} apps       {with_apps:>8} MiB  (after the list benchmark: {after} MiB, peak {peak} MiB)")
print(f"  daemon RSS after the events    {rss_end:>8} MiB  (peak over the whole run {peak_end} MiB)")
print(f"  daemon CPU, {apps} apps, idle      {idle_cpu:>8} ms over {settle} s  (stats sampled every {stats_interval} s)")
print(f"  {apps} installs, 4 in parallel    {install_secs:>8} s")

ui = json.load(open(ui_path))
print()
print(f"web UI first load, {apps} apps (web/e2e/first-load.mjs: medians of 5 cold loads, headless chromium; no target)")
print(f"  bytes transferred              {ui['bytes']:8d}")
print(f"  requests                       {ui['requests']:8d}")
print(f"  time to interactive            {ui['time_to_interactive_ms']:8d} ms")

ev = json.load(open(events_path))
en = ev["engine"]
def ms(v):
    return "—" if v is None else f"{v:.1f} ms"
def lag(v):
    return "—" if not v else f"median {v['median']:.1f} ms, p95 {v['p95']:.1f} ms, max {v['max']:.1f} ms"
def rate(v):
    return "—" if v is None else f"{v:.0f}/s"
print()
print(f"events follower: {ev['reinstalls']} reinstalls (uninstall, install; {ev['rounds']} rounds over the {apps} apps, 8 at a time) "
      f"in {ev['generate_s']:.1f} s; no target")
print(f"  events generated (stored)      {ev['stored']:8d}  (ids {ev['first_id']}..{ev['last_id']})")
print(f"  events the follower received   {ev['received']:8d}")
print(f"  ids exactly the stored sequence  {'yes' if ev['exact'] else 'NO'}  (missing {ev['missing']}, "
      f"duplicated {ev['duplicated']}, out of order {ev['out_of_order']}, not stored {ev['not_stored']}, gaps {ev['gaps']})")
print(f"  first → last event (their at)  {ev.get('stored_span_s', 0):8.2f} s  ({rate(ev['stored'] / ev['stored_span_s'] if ev.get('stored_span_s') else None)} stored)")
print(f"  first → last received          {ev.get('received_span_s', 0):8.2f} s  ({rate(ev.get('delivered_per_s'))} delivered)")
print(f"  follower lag, last event       {ms(ev.get('last_lag_ms')):>11}  (received − its at)")
print(f"  follower lag, every event      {lag(ev.get('lag_ms'))}")
print(f"  kinds: {', '.join(f'{k} {n}' for k, n in ev['kinds'])}")
print(f"the Docker Engine's event stream, the same containers over the same time (curl /v1.41/events)")
print(f"  events                         {en['events']:8d}  ({', '.join(f'{k} {n}' for k, n in en.get('actions', []))})")
if en["events"]:
    print(f"  first → last event (timeNano)  {en['span_s']:8.2f} s")
    print(f"  first → last received          {en['received_span_s']:8.2f} s  ({rate(en.get('delivered_per_s'))} delivered)")
    print(f"  follower lag, last event       {ms(en['last_lag_ms']):>11}  (received − timeNano)")
    print(f"  follower lag, every event      {lag(en['lag_ms'])}")
    print("  no ratio of counts or rates: the two streams carry different events for the same activity (berth: its")
    print("  apps' states and journal steps; the engine: container actions), and both rates are set by the reinstalls")
    if ev.get("lag_ms") and en["lag_ms"]["median"] > 0:
        print(f"  ratio of median lags berth / engine  {ev['lag_ms']['median'] / en['lag_ms']['median']:.2f}x  "
              "(the same measure: an event's own time stamp → the same kind of follower reading it)")

print()
print(f"  target: berth list faster than docker ps   {'PASS' if list_ok else 'FAIL'}")
print(f"  target: daemon RSS < {target} MiB with {apps} apps  {'PASS' if rss_ok else 'FAIL'} ({rss_worst:.1f} MiB)")
PY
printf '  machine: %s CPUs (%s), %s RAM, kernel %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf '  docker: engine %s, CLI %s; %s; %s\n' \
    "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" \
    "$(hyperfine --version)" "$("$BERTH" --version)"
printf '  load average: %s at the start, %s after the build, %s at the end\n' \
    "$LOAD_START" "$LOAD_MEASURED" "$(cut -d' ' -f1-3 /proc/loadavg)"
