#!/usr/bin/env bash
# berth benchmark: `berth list --output json` with 200 installed apps against
# `docker ps -a --filter label=berth.app` (and the raw Engine API), measured
# side by side in one hyperfine run, plus the daemon's resident memory idle
# and with 200 apps, a `/metrics` scrape and a read of the whole event log
# with those apps. Prints the figures and pass/fail against the targets
# (see docs/PERFORMANCE.md); it exits 0 whether or not the targets are met,
# and non-zero only when something broke.
#
# Usage, from the repository root:   scripts/bench.sh
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/berth/target)
#   BENCH_APPS        number of apps to install (default 200)
#   BENCH_RUNS        hyperfine runs per command (default 30)
#   BENCH_EXPORT      if set, the hyperfine JSON is copied to this path
#   BENCH_DAEMON_LOG  if set, the daemon's log is copied to this path at exit
#
# Everything the run creates (daemon, containers, the sample image, the work
# directory) is removed on exit. If a run was killed with SIGKILL, the next
# run finds its state file and removes its leftovers first.
set -euo pipefail

APPS="${BENCH_APPS:-200}"
RUNS="${BENCH_RUNS:-30}"
TARGET_RSS_MIB=30
IMAGE_TAG="berth-bench/sample:1"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_NAME=bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# ---------------------------------------------------------------- prerequisites
command -v docker >/dev/null || die "the docker CLI is needed (it is the comparison baseline)"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
command -v cargo >/dev/null || die "cargo is needed"
require_engine
command -v hyperfine >/dev/null || apt_install hyperfine

# -------------------------------------------------- one run at a time, leftovers
take_lock

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_INSTANCE:-}" ]; then remove_containers "berth.instance=$OLD_INSTANCE"; fi
        if [ -n "${OLD_IMAGE:-}" ]; then docker rmi -f "$OLD_IMAGE" >/dev/null 2>&1 || true; fi
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
build_release_binaries

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
INSTANCE=""
IMAGE_ID=""

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_INSTANCE=%q\nOLD_IMAGE=%q\n' "$W" "$DAEMON_PID" "$INSTANCE" "$IMAGE_ID" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    set +e
    say "cleaning up"
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
start_daemon
sleep 2
RSS_IDLE=$(rss_mib)
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE, idle RSS $RSS_IDLE MiB"

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

# ------------------------------------------------------------------ summary
python3 - "$W/hyperfine.json" "$APPS" "$RSS_IDLE" "$RSS_APPS" "$RSS_AFTER" "$RSS_PEAK" "$TARGET_RSS_MIB" \
    "$DOCKER_COUNT" "$INSTALL_SECS" "$W/requests.txt" "$IDLE_CPU_MS" "$SETTLE" <<'PY'
import json, sys
path, apps, idle, with_apps, after, peak, target, docker_count, install_secs, requests, idle_cpu, settle = sys.argv[1:]
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
print(f"  /metrics scrape, {apps} apps     {float(metrics_row[1]):8.2f} ms mean, {int(metrics_row[4])} bytes")
print(f"  daemon RSS idle (0 apps)       {idle:>8} MiB")
print(f"  daemon RSS with {apps} apps       {with_apps:>8} MiB  (after the list benchmark: {after} MiB, peak {peak} MiB)")
print(f"  daemon CPU, {apps} apps, idle      {idle_cpu:>8} ms over {settle} s")
print(f"  {apps} installs, 4 in parallel    {install_secs:>8} s")
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
printf '  load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
