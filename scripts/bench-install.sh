#!/usr/bin/env bash
# berth benchmark: installing from http. `tpcm install <app> http://…/big.tar.gz -y`
# (a ~100 MB gzipped image archive served on the loopback) against the shell
# pipeline `curl -sf http://…/big.tar.gz | gunzip | docker load`, and against
# the same pipeline followed by `docker run -d` (which, like the install, also
# creates and starts a container), measured in the same run, taking turns,
# with the image removed between runs so that every run really loads it.
# Prints the figures and pass/fail against the target (issue 12: berth, until
# the app runs, at most 0.9x the pipeline followed by docker run -d, the same
# work; see docs/PERFORMANCE.md); it exits 0 whether or not the
# target is met, and non-zero only when something broke.
#
# Usage, from the repository root:   scripts/bench-install.sh
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/berth/target)
#   BENCH_RUNS        measured runs per command (default 5)
#   BENCH_WARMUP      unmeasured runs per command first (default 1)
#   BENCH_PAD_MB      incompressible payload of the image in MiB (default 100)
#   BENCH_EXPORT      if set, the per-run figures (TSV) are copied to this path
#   BENCH_EVENTS      if set, the engine events seen during the run are copied to this path
#   BENCH_DAEMON_LOG  if set, the daemon's log is copied to this path at exit
#
# Everything the run creates (daemon, http server, event listener, containers,
# the image, the work directory) is removed on exit. If a run was killed with
# SIGKILL, the next run finds its state file and removes its leftovers first.
set -euo pipefail

RUNS="${BENCH_RUNS:-5}"
WARMUP="${BENCH_WARMUP:-1}"
PAD_MB="${BENCH_PAD_MB:-100}"
TARGET_RATIO=0.90
IMAGE_TAG="berth-bench/big:1"
APP_PREFIX="big-"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_NAME=bench-install
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number, not '$WARMUP'"
[[ "$PAD_MB" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PAD_MB must be a positive number, not '$PAD_MB'"

# ---------------------------------------------------------------- prerequisites
command -v docker >/dev/null || die "the docker CLI is needed (it is the comparison baseline)"
command -v python3 >/dev/null || die "python3 is needed (it serves the archive over http)"
command -v gunzip >/dev/null || die "gunzip is needed (it is part of the baseline)"
command -v cargo >/dev/null || die "cargo is needed"
command -v curl >/dev/null || apt_install curl
require_engine
[ -n "${EPOCHREALTIME:-}" ] || die "bash 5 is needed (\$EPOCHREALTIME)"

# -------------------------------------------------- one run at a time, leftovers
take_lock

BENCH_LABEL=berth.bench-install
stop_helper() { # $1: pid, $2: text its command line must hold (so a reused pid is left alone)
    local pid=$1 mark=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 0
    kill -TERM "$pid" 2>/dev/null || true
}

remove_image() { # the benchmark image, if it is the benchmark's (labelled as a test image)
    local label
    label=$(docker image inspect --format '{{index .Config.Labels "berth.test.sweep"}}' "$IMAGE_TAG" 2>/dev/null) || return 0
    [ "$label" = 1 ] || die "$IMAGE_TAG exists and is not a benchmark image; remove it first"
    docker rmi -f "$IMAGE_TAG" >/dev/null
}

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        stop_helper "${OLD_EVENTS_PID:-}" "events --since"
        stop_helper "${OLD_HTTP_PID:-}" "http.server --bind 127.0.0.1 ${OLD_PORT:-0} --directory ${OLD_W:-/nonexistent}"
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_INSTANCE:-}" ]; then remove_containers "berth.instance=$OLD_INSTANCE"; fi
        if [ -n "${OLD_W:-}" ]; then remove_containers "$BENCH_LABEL=$OLD_W"; fi
        remove_image || true
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
build_release_binaries

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench-install.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
HTTP_PID=""
PORT=""
EVENTS_PID=""
INSTANCE=""

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_INSTANCE=%q\nOLD_HTTP_PID=%q\nOLD_PORT=%q\nOLD_EVENTS_PID=%q\n' \
        "$W" "$DAEMON_PID" "$INSTANCE" "$HTTP_PID" "$PORT" "$EVENTS_PID" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    trap '' PIPE # the output may be gone (`… | head`): clean up all the same
    set +e
    say "cleaning up"
    stop_helper "$EVENTS_PID" "events --since"
    stop_helper "$HTTP_PID" "http.server --bind 127.0.0.1 $PORT --directory $W"
    stop_daemon "$DAEMON_PID" "$W"
    [ -n "$INSTANCE" ] && remove_containers "berth.instance=$INSTANCE"
    remove_containers "$BENCH_LABEL=$W"
    (remove_image)
    finish_cleanup "$status"
}
trap_cleanup
save_state

# The names the run needs must be free.
taken=$(docker ps -a --format '{{.Names}}' | grep -cE "^${APP_PREFIX}(run-)?[0-9]+\$" || true)
[ "$taken" -eq 0 ] || die "$taken container(s) named ${APP_PREFIX}N already exist; remove them first (docker ps -a --filter name=$APP_PREFIX)"
remove_image

image_present() { docker image inspect "$IMAGE_TAG" >/dev/null 2>&1; }
now_us() { # wall clock in microseconds, into the variable named $1 (no fork)
    local t=$EPOCHREALTIME
    printf -v "$1" '%s' "${t//[.,]/}"
}
# CPU time is read without starting processes, so that the readings do not
# count themselves: the shell's children times include every process it waited for.
cpu_ms_of() { # utime + stime of process $2 in ms, into the variable named $1
    local -a f=()
    read -r -a f <"/proc/$2/stat" 2>/dev/null || f=()
    if [ "${#f[@]}" -ge 15 ]; then
        printf -v "$1" '%s' $(((f[13] + f[14]) * 1000 / CLK_TCK))
    else
        printf -v "$1" '%s' 0
    fi
}
children_cpu_ms() { # user + system time of this shell's finished children in ms, into the variable named $1
    local line
    times >"$W/times.txt" # `times` in $(…) would report the subshell's children
    { read -r line; read -r line; } <"$W/times.txt"
    [[ "$line" =~ ^([0-9]+)m([0-9]+)[.,]([0-9]{3})s\ ([0-9]+)m([0-9]+)[.,]([0-9]{3})s$ ]] \
        || die "cannot read the output of times: $line"
    local r=("${BASH_REMATCH[@]}")
    printf -v "$1" '%s' $(((10#${r[1]} * 60 + 10#${r[2]}) * 1000 + 10#${r[3]} + (10#${r[4]} * 60 + 10#${r[5]}) * 1000 + 10#${r[6]}))
}
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------- archive
say "writing the image archive ($PAD_MB MiB incompressible payload, gzip)"
IMAGE_ID=$("$MKIMAGE" --tag "$IMAGE_TAG" --gzip --pad-mb "$PAD_MB" --out "$W/big.tar.gz" --label berth.test.sweep=1)
ARCHIVE_BYTES=$(stat -c %s "$W/big.tar.gz")
TAR_BYTES=$(gunzip -c "$W/big.tar.gz" | wc -c)
say "archive $(du -h "$W/big.tar.gz" | cut -f1) ($ARCHIVE_BYTES bytes, $TAR_BYTES as tar), image $IMAGE_ID"

# --------------------------------------------------------------- http server
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT/big.tar.gz"
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$W" </dev/null >"$W/http.log" 2>&1 9>&- &
HTTP_PID=$!
save_state
for _ in $(seq 100); do
    kill -0 "$HTTP_PID" 2>/dev/null || die "the http server exited: $(cat "$W/http.log")"
    curl -sfI "$URL" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sfI "$URL" >/dev/null || die "the http server does not answer on $URL"
say "serving $URL (python3 http.server, pid $HTTP_PID)"

# -------------------------------------------------------------------- daemon
start_daemon
ln -s "$BERTH" "$W/tpcm"
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE"

# The engine's own record of when each image finished loading and when each
# container was created and started, to split the times below.
docker events --since "$(date +%s)" --filter type=image --filter type=container \
    --format '{{.TimeNano}} {{.Type}} {{.Action}} {{.ID}} {{index .Actor.Attributes "name"}}' \
    </dev/null >"$W/events.log" 2>"$W/events.err" 9>&- &
EVENTS_PID=$!
save_state
sleep 1
kill -0 "$EVENTS_PID" 2>/dev/null || die "docker events exited: $(cat "$W/events.err")"

# The engine's CPU time is reported when its process can be told: its pid file,
# or the only dockerd running.
DOCKERD_PID=$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd 2>/dev/null | awk 'NF == 1 { print $1 }') || true
[ -n "$DOCKERD_PID" ] && [ "$(cat "/proc/$DOCKERD_PID/comm" 2>/dev/null)" = dockerd ] || DOCKERD_PID=""

# ------------------------------------------------------------------- the runs
# One line per run in runs.tsv:
#   side  round  start_us  end_us  dockerd_cpu_ms  daemon_cpu_ms  children_cpu_ms  app
printf 'side\tround\tstart_us\tend_us\tdockerd_cpu_ms\tberth_daemon_cpu_ms\tclient_cpu_ms\tapp\n' >"$W/runs.tsv"
LEFTOVER_IMAGES=0

measure() { # $1: side, $2: round, $3: app (or -), then the command
    local side=$1 round=$2 app=$3 start end d0=0 d1=0 b0 b1 c0 c1
    shift 3
    children_cpu_ms c0
    [ -z "$DOCKERD_PID" ] || cpu_ms_of d0 "$DOCKERD_PID"
    cpu_ms_of b0 "$DAEMON_PID"
    now_us start
    "$@" >"$W/run.log" 2>&1 9>&- || die "$side run $round failed: $*"
    now_us end
    cpu_ms_of b1 "$DAEMON_PID"
    [ -z "$DOCKERD_PID" ] || cpu_ms_of d1 "$DOCKERD_PID"
    children_cpu_ms c1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$side" "$round" "$start" "$end" \
        $((d1 - d0)) $((b1 - b0)) $((c1 - c0)) "$app" >>"$W/runs.tsv"
}

run_berth() { # $1: round
    local app="$APP_PREFIX$1"
    measure berth "$1" "$app" "$W/tpcm" --socket "$SOCK" install "$app" "$URL" -y
    "$BERTH" --socket "$SOCK" uninstall "$app" -y >"$W/uninstall.log" 2>&1 9>&- \
        || { cat "$W/uninstall.log" >&2; die "uninstalling $app failed"; }
    if image_present; then
        # berth uninstall removes an image no other app uses; it did not.
        LEFTOVER_IMAGES=$((LEFTOVER_IMAGES + 1))
        docker rmi -f "$IMAGE_TAG" >/dev/null
    fi
}

run_baseline() { # $1: round
    measure baseline "$1" - bash -c 'set -o pipefail; curl -sf "$1" | gunzip | docker load' _ "$URL"
    grep -q "Loaded image: $IMAGE_TAG" "$W/run.log" || die "docker load did not report $IMAGE_TAG: $(cat "$W/run.log")"
    docker rmi "$IMAGE_TAG" >/dev/null
}

run_docker_run() { # $1: round
    local name="${APP_PREFIX}run-$1"
    measure run "$1" "$name" bash -c 'set -o pipefail; curl -sf "$1" | gunzip | docker load && docker run -d --name "$2" --label "$3" "$4"' \
        _ "$URL" "$name" "$BENCH_LABEL=$W" "$IMAGE_TAG"
    docker rm -f -v "$name" >/dev/null
    docker rmi "$IMAGE_TAG" >/dev/null
}

image_present && die "$IMAGE_TAG is still in the engine"
SIDES=(berth baseline docker_run)
seconds() { # $1: side, $2: round
    awk -F'\t' -v s="$1" -v r="$2" '$1 == s && $2 == r { printf "%.2f", ($4 - $3) / 1e6 }' "$W/runs.tsv"
}
say "$WARMUP warm-up and $RUNS measured rounds; each round runs the three commands once, the order rotating"
for ((round = 1 - WARMUP; round <= RUNS; round++)); do
    label="round $round"
    ((round < 1)) && label="warm-up"
    for ((k = 0; k < 3; k++)); do
        "run_${SIDES[(round + WARMUP + k) % 3]}" "$round"
    done
    printf '    %-8s tpcm install %s s   pipeline %s s   pipeline + docker run %s s\n' \
        "$label" "$(seconds berth "$round")" "$(seconds baseline "$round")" "$(seconds run "$round")"
done

# What starting the baseline's shell costs (it is inside the pipeline's times).
now_us shell_start
for _ in $(seq 20); do bash -c 'set -o pipefail; true'; done
now_us shell_end
SHELL_MS=$(awk -v us=$((shell_end - shell_start)) 'BEGIN { printf "%.1f", us / 20 / 1000 }')
sleep 1 # let the last events arrive
RSS_PEAK=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status")
[ -z "${BENCH_EXPORT:-}" ] || cp "$W/runs.tsv" "$BENCH_EXPORT"
[ -z "${BENCH_EVENTS:-}" ] || cp "$W/events.log" "$BENCH_EVENTS"

# ------------------------------------------------------------------ summary
python3 - "$W/runs.tsv" "$W/events.log" "$IMAGE_ID" "$ARCHIVE_BYTES" "$TAR_BYTES" "$TARGET_RATIO" "$SHELL_MS" "$RSS_PEAK" \
    "$LEFTOVER_IMAGES" "$([ -n "$DOCKERD_PID" ] && echo yes || echo no)" <<'PY'
import csv, statistics, sys
runs_path, events_path, image_id, archive_bytes, tar_bytes, target, shell_ms, rss_peak, leftovers, have_dockerd = sys.argv[1:]
target = float(target)
runs = [r for r in csv.DictReader(open(runs_path), delimiter="\t") if int(r["round"]) >= 1]
events = []
for line in open(events_path):
    parts = line.split()
    if len(parts) >= 4:
        events.append((int(parts[0]), parts[1], parts[2], parts[3], parts[4] if len(parts) > 4 else ""))

def first_event(start_ns, end_ns, kind, action, actor=None, name=None):
    """The first such engine event inside the run (other programs may use the engine meanwhile)."""
    for t, k, a, i, n in events:
        if start_ns <= t <= end_ns and k == kind and a == action and actor in (None, i) and name in (None, n):
            return t
    return None

rows = {"berth": [], "baseline": [], "run": []}
for r in runs:
    start, end = int(r["start_us"]) * 1000, int(r["end_us"]) * 1000
    loaded = first_event(start, end, "image", "load", actor=image_id)
    row = {
        "total": (end - start) / 1e9,
        "loaded": None if loaded is None else (loaded - start) / 1e9,
        "after_load": None if loaded is None else (end - loaded) / 1e9,
        "dockerd_cpu": int(r["dockerd_cpu_ms"]) / 1e3,
        "berth_cpu": int(r["berth_daemon_cpu_ms"]) / 1e3,
        "client_cpu": int(r["client_cpu_ms"]) / 1e3,
    }
    if r["app"] != "-":
        created = first_event(start, end, "container", "create", name=r["app"])
        started = first_event(start, end, "container", "start", name=r["app"])
        row["create"] = None if created is None or loaded is None else (created - loaded) / 1e9
        row["start"] = None if started is None or created is None else (started - created) / 1e9
        row["tail"] = None if started is None else (end - started) / 1e9
    rows[r["side"]].append(row)

def stats(side, key):
    values = [row[key] for row in rows[side] if row.get(key) is not None]
    if len(values) != len(rows[side]) or not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0), min(values), max(values)

def fmt(s, unit="s"):
    if s is None:
        return f"{'n/a':>8} {'':>7} {'':>8} {'':>8}"
    return f"{s[0]:8.3f} {s[1]:7.3f} {s[2]:8.3f} {s[3]:8.3f}"

mb = int(archive_bytes) / 1e6
n = len(rows["berth"])
print()
print(f"install from http, {n} runs per command, taking turns; archive {mb:.1f} MB gzip "
      f"({int(tar_bytes) / 1e6:.1f} MB tar)")
print(f"  {'seconds':<58} {'mean':>8} {'stddev':>7} {'min':>8} {'max':>8}")
table = [
    ("A  tpcm install … -y, total", "berth", "total"),
    ("B  curl | gunzip | docker load, total", "baseline", "total"),
    ("C  curl | gunzip | docker load && docker run -d, total", "run", "total"),
    (None, None, None),
    ("A  start → the engine's image load event", "berth", "loaded"),
    ("B  start → the engine's image load event", "baseline", "loaded"),
    ("C  start → the engine's image load event", "run", "loaded"),
    (None, None, None),
    ("A  load event → container created", "berth", "create"),
    ("A  container created → started", "berth", "start"),
    ("A  started → install returns (start check 100 ms)", "berth", "tail"),
    ("B  load event → docker load returns", "baseline", "after_load"),
    ("C  load event → container created", "run", "create"),
    ("C  container created → started", "run", "start"),
    ("C  started → docker run returns", "run", "tail"),
]
for name, side, key in table:
    print(f"  {name:<58} {fmt(stats(side, key))}" if name else "")
print()
print("CPU seconds per run (mean)")
print(f"  {'':<34} {'A':>6} {'B':>6} {'C':>6}")
cpu_rows = [("dockerd", "dockerd_cpu")] if have_dockerd == "yes" else []
cpu_rows += [("berth daemon", "berth_cpu"), ("client processes", "client_cpu")]
for name, key in cpu_rows:
    print(f"  {name:<34} " + " ".join(f"{stats(side, key)[0]:6.2f}" for side in ("berth", "baseline", "run")))
print("  (client processes: A tpcm; B, C bash, curl, gunzip and the docker CLI.")
print("   The berth daemon downloads, gunzips, checks the tar and uploads; it hashes only for --sha256.)")

total_b, total_p, total_r = stats("berth", "total"), stats("baseline", "total"), stats("run", "total")
ratio = total_b[0] / total_p[0]
load_b, load_p, load_r = stats("berth", "loaded"), stats("baseline", "loaded"), stats("run", "loaded")
print()
print("summary")
print(f"  A tpcm install (http)               {total_b[0]:7.3f} s ± {total_b[1]:.3f}  ({mb / total_b[0]:.1f} MB/s of archive)")
print(f"  B curl | gunzip | docker load      {total_p[0]:7.3f} s ± {total_p[1]:.3f}  ({mb / total_p[0]:.1f} MB/s of archive)")
print(f"  C B && docker run -d               {total_r[0]:7.3f} s ± {total_r[1]:.3f}")
print(f"  {'ratio A / B, total':<56} {ratio:6.3f}")
if load_b and load_p and load_r:
    print(f"  {'ratio A / B, start → image loaded':<56} {load_b[0] / load_p[0]:6.3f}")
    print(f"  {'ratio A / C, start → image loaded':<56} {load_b[0] / load_r[0]:6.3f}")
print(f"  {'ratio A / C, total (both end with a started container; the target)':<56} {total_b[0] / total_r[0]:6.3f}")
print(f"  the pipeline's bash start-up (inside its times): {shell_ms} ms")
print(f"  berth daemon peak RSS during the run: {rss_peak} MiB")
if int(leftovers):
    print(f"  NOTE: after {leftovers} uninstall(s) the image was still in the engine (removed by the script)")
ratio_run = total_b[0] / total_r[0]
print(f"  target: tpcm install at most {target:g}x the pipeline and docker run -d (A / C)   "
      f"{'PASS' if ratio_run <= target else 'FAIL'} ({ratio_run:.3f})")
PY
printf '  machine: %s CPUs (%s), %s RAM, kernel %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf '  docker: engine %s (storage %s), CLI %s; curl %s; %s; %s\n' \
    "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(docker info --format '{{.Driver}}' 2>/dev/null)" \
    "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" \
    "$(curl --version | awk 'NR == 1 { print $2 }')" "$(python3 --version)" "$("$BERTH" --version)"
printf '  load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
