#!/usr/bin/env bash
# berth benchmark: performance at appliance scale (1,000 apps), every figure
# beside its Docker baseline, measured in one run on the same engine:
#   1. 1,000 installs, 8 in parallel (`berth install bench-NNNN sample.tar -y`
#      through xargs -P8), total wall time, against `docker run -d` of the same
#      image with the same options as berth's containers (read from a probe
#      app's container with docker inspect), 8 in parallel, the same count;
#      the docker run containers are made and removed first, so that both see
#      the same engine;
#   2. `berth list --output json` with the 1,000 apps against
#      `docker ps -a --filter label=berth.app` and the raw Engine API
#      (/containers/json over the socket), in one hyperfine run;
#   3. the daemon's resident memory (VmRSS) idle before the installs and idle
#      with the 1,000 apps, and its peak (VmHWM);
#   4. the daemon's CPU time (utime + stime) over 10 s, idle with the apps;
#   5. boot convergence after a power cut, for N apps (100, then all): the
#      daemon killed with SIGKILL and every container of its instance with
#      `docker kill`; then, taking turns, `docker start` of those containers
#      16 at a time (the baseline), and the daemon launched again on the same
#      root, timed from its launch to the engine's start event of the last
#      container (and of the first).
# Prints a table with the ratios and pass/fail against the targets (installs
# at most 1.2x docker run; list at least 10x faster than docker ps; RSS under
# 40 MiB with 1,000 apps; no measurable idle CPU, at most 10 ms over 10 s;
# boot at most 1.05x docker start, the first app started within 1 s of the
# daemon's launch). It exits 0 whether or not the targets are met, and
# non-zero only when something broke.
#
# Usage, from the repository root:   scripts/bench-scale.sh
# Needs the Docker Engine, curl, python3, cargo (and hyperfine, installed with
# apt-get if missing). It takes a while with 1,000 apps: the engine starts a
# few containers a second on a small machine, and the run makes 1,000 twice
# and starts them again 2 x 2 x (100 + 1,000) times.
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/berth/target)
#   BENCH_APPS        number of apps (default 1000, at most 9999)
#   BENCH_RUNS        hyperfine runs per command (default 20)
#   BENCH_BOOT_SIZES  app counts boot convergence is measured at, each at most
#                     BENCH_APPS (default "100 1000"); the installs are staged
#                     at these counts, and docker run's in the same stages
#   BENCH_BOOT_RUNS   runs of each side per boot size, taking turns (default 2)
#   BENCH_TOML        appended to the daemon's berth.toml (default: nothing,
#                     so [metrics] stats_interval_secs is berth's default, 15)
#   BENCH_EXPORT      if set, the figures are written to this path as JSON
#   BENCH_DAEMON_LOG  if set, the daemon's log (all its launches) is copied to
#                     this path at exit
#
# Everything the run creates (daemon, event listeners, berth's containers, the
# docker run containers, the sample image, the work directory) is removed on
# exit. If a run was killed with SIGKILL, the next run finds its state file
# and removes its leftovers first.
set -euo pipefail

APPS="${BENCH_APPS:-1000}"
RUNS="${BENCH_RUNS:-20}"
BOOT_SIZES="${BENCH_BOOT_SIZES:-100 1000}"
BOOT_RUNS="${BENCH_BOOT_RUNS:-2}"
PARALLEL_INSTALLS=8
PARALLEL_STARTS=16
SETTLE_SECS=5     # after the installs, before the memory is read
IDLE_CPU_SECS=10  # the idle CPU is measured over this long
TARGET_INSTALL_RATIO=1.2
TARGET_LIST_SPEEDUP=10
TARGET_RSS_MIB=40
TARGET_IDLE_CPU_MS=10
TARGET_BOOT_RATIO=1.05
TARGET_FIRST_APP_S=1
IMAGE_TAG="berth-bench/scale:1"
PROBE=bench-0000 # the app whose container's options docker run copies (uninstalled again)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

BENCH_NAME=bench-scale
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

[[ "$APPS" =~ ^[1-9][0-9]*$ && "$APPS" -le 9999 ]] || die "BENCH_APPS must be a number from 1 to 9999, not '$APPS'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"
[[ "$BOOT_RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_BOOT_RUNS must be a positive number, not '$BOOT_RUNS'"
SIZES=()
for n in $BOOT_SIZES; do
    [[ "$n" =~ ^[1-9][0-9]*$ && "$n" -le "$APPS" ]] || die "BENCH_BOOT_SIZES: '$n' is not a number from 1 to BENCH_APPS ($APPS)"
    SIZES+=("$n")
done
[ "${#SIZES[@]}" -eq 0 ] || mapfile -t SIZES < <(printf '%s\n' "${SIZES[@]}" | sort -n -u)
# The install stages: up to each boot size, then up to all the apps.
STAGES=("${SIZES[@]}")
[ "${#STAGES[@]}" -gt 0 ] && [ "${STAGES[-1]}" -eq "$APPS" ] || STAGES+=("$APPS")

# ---------------------------------------------------------------- prerequisites
require_bench_tools

# -------------------------------------------------- one run at a time, leftovers
take_lock

BENCH_LABEL=berth.bench-scale # on the docker run containers, = the work dir
stop_helper() { # $1: pid, $2: text its command line must hold (so a reused pid is left alone)
    local pid=$1 mark=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 0
    kill -TERM "$pid" 2>/dev/null || true
}

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        stop_helper "${OLD_EVENTS_PID:-}" "events --since"
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_INSTANCE:-}" ]; then remove_containers "berth.instance=$OLD_INSTANCE"; fi
        if [ -n "${OLD_W:-}" ]; then remove_containers "$BENCH_LABEL=$OLD_W"; fi
        if [ -n "${OLD_IMAGE:-}" ]; then docker rmi -f "$OLD_IMAGE" >/dev/null 2>&1 || true; fi
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
build_release_binaries
LOAD_MEASURED=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average $LOAD_MEASURED (at the start: $LOAD_START)"

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench-scale.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
INSTANCE=""
IMAGE_ID=""
EVENTS_PID=""

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_INSTANCE=%q\nOLD_IMAGE=%q\nOLD_EVENTS_PID=%q\n' \
        "$W" "$DAEMON_PID" "$INSTANCE" "$IMAGE_ID" "$EVENTS_PID" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    trap '' PIPE # the output may be gone (`… | head`): clean up all the same
    set +e
    say "cleaning up"
    stop_helper "$EVENTS_PID" "events --since"
    stop_daemon "$DAEMON_PID" "$W"
    [ -n "$INSTANCE" ] && remove_containers "berth.instance=$INSTANCE"
    remove_containers "$BENCH_LABEL=$W"
    [ -n "$IMAGE_ID" ] && docker rmi -f "$IMAGE_ID" >/dev/null 2>&1
    finish_cleanup "$status"
}
trap_cleanup
save_state

# The names the run needs must be free: a container of another berth instance
# with one of them would make the installs fail.
taken=$(docker ps -a --format '{{.Names}}' | grep -cE '^bench-(run-)?[0-9]{4}$' || true)
[ "$taken" -eq 0 ] || die "$taken container(s) named bench-NNNN or bench-run-NNNN already exist; remove them first (docker ps -a --filter name=bench-)"

CLK_TCK=$(getconf CLK_TCK)
now_us() { # wall clock in microseconds, into the variable named $1 (no fork)
    local t=$EPOCHREALTIME
    printf -v "$1" '%s' "${t//[.,]/}"
}
secs_since() { # $1: a time from now_us; seconds since then, two decimals
    local now
    now_us now
    awk -v a="$1" -v b="$now" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'
}
rss_mib() { # VmRSS of the daemon in MiB, one decimal
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status"
}
hwm_mib() { # VmHWM (peak RSS) of the daemon in MiB, one decimal
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
open_fds() { # how many files the daemon has open, into the variable named $1 (no fork)
    local entries=("/proc/$DAEMON_PID/fd/"*)
    printf -v "$1" '%s' "${#entries[@]}"
}
figure() { printf '%s\t%s\n' "$1" "$2" >>"$W/figures.tsv"; } # $1: key, $2: value, for the summary
instance_ids() { docker ps -aq --filter "label=berth.instance=$INSTANCE" "$@"; }

# ------------------------------------------------------------------ daemon
start_daemon
sleep 2
RSS_IDLE=$(rss_mib)
figure rss_idle_mib "$RSS_IDLE"
idle_fds=0
open_fds idle_fds
figure fds_idle "$idle_fds"
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE, idle RSS $RSS_IDLE MiB"

# Launches the daemon again on the same root and berth.toml (as start_daemon
# does, its log appended), without waiting: sets DAEMON_PID and LAUNCH_US.
launch_daemon() {
    printf '\n==> bench-scale: the daemon launched again\n\n' >>"$W/daemon.log"
    now_us LAUNCH_US
    RUST_LOG="${RUST_LOG:-info}" "$BERTH" daemon --root "$W/root" --unit-dir "$W/units" --socket "$SOCK" \
        </dev/null >>"$W/daemon.log" 2>&1 9>&- &
    DAEMON_PID=$!
    save_state
}
daemon_ready() { # whether /v1/info says ready, for this run's instance
    local out
    out=$(info 2>/dev/null) || return 1
    [ "$(json_field ready <<<"$out")" = true ] || return 1
    [ "$(json_field instance <<<"$out")" = "$INSTANCE" ] || die "the daemon came back as instance $(json_field instance <<<"$out"), not $INSTANCE"
}
ready_now() { # the same, cheaply (no python3): for the polls during a boot that is measured
    [[ "$(info 2>/dev/null)" =~ \"ready\":\ *true ]]
}
wait_ready() { # $1: seconds
    local start=$SECONDS
    until daemon_ready; do
        kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited during start-up"
        ((SECONDS - start < $1)) || die "the daemon did not become ready within $1 s"
        sleep 0.1
    done
}
# The power cut: SIGKILL to this run's daemon (checked by its command line, as stop_daemon does).
kill_daemon() {
    [[ -n "$DAEMON_PID" && -r "/proc/$DAEMON_PID/cmdline" ]] || die "the daemon (pid ${DAEMON_PID:-none}) is not running"
    tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline" | grep -q -- "daemon --root $W/root" \
        || die "pid $DAEMON_PID is not this run's daemon"
    kill -KILL "$DAEMON_PID"
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    save_state
}
kill_apps() { # docker kill of every running container of the instance; until none runs
    local ids start=$SECONDS
    ids=$(instance_ids --filter status=running)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || docker kill $ids >/dev/null 2>>"$W/kill.log" || true
    while [ -n "$(instance_ids --filter status=running)" ]; do
        ((SECONDS - start < 120)) || die "containers of instance $INSTANCE still run 120 s after docker kill"
        sleep 0.2
    done
}
# The engine's start events of this instance's containers from now on, into
# $1 (`TimeNano ID` a line). --since: what happens before the listener is
# connected is replayed to it.
start_events() {
    local since
    since=$(date +%s.%N)
    docker events --since "$since" --filter type=container --filter event=start \
        --filter "label=berth.instance=$INSTANCE" --format '{{.TimeNano}} {{.ID}}' \
        </dev/null >"$1" 2>"$1.err" 9>&- &
    EVENTS_PID=$!
    save_state
}
stop_events() {
    stop_helper "$EVENTS_PID" "events --since"
    wait "$EVENTS_PID" 2>/dev/null || true
    EVENTS_PID=""
    save_state
}
started() { cut -d' ' -f2 "$1" | sort -u | wc -l; } # containers the events file $1 has a start of

# ----------------------------------------------------- the probe, docker run's options
IMAGE_ID=$("$MKIMAGE" --tag "$IMAGE_TAG" --out "$W/sample.tar" --label berth.test.sweep=1)
save_state
say "sample image $IMAGE_TAG ($IMAGE_ID, $(du -h "$W/sample.tar" | cut -f1))"
"$BERTH" --socket "$SOCK" install "$PROBE" "$W/sample.tar" -y >"$W/probe.log" 2>&1 9>&- \
    || { cat "$W/probe.log" >&2; die "installing the probe app $PROBE failed"; }
docker inspect "$PROBE" >"$W/probe.json"
docker image inspect "$IMAGE_ID" >"$W/image.json"
"$BERTH" --socket "$SOCK" uninstall "$PROBE" -y >>"$W/probe.log" 2>&1 9>&- \
    || { cat "$W/probe.log" >&2; die "uninstalling the probe app $PROBE failed"; }
# berth removes the image with its last app; docker run needs it.
docker load -i "$W/sample.tar" >/dev/null

# docker run's arguments (NUL-separated, `{}` for the number), from the
# probe's container: what berth sets beyond the image's own config. Binds
# under berth's root (the app's private dir; the tether: its agent dir,
# shared, and a socket dir per container) become the same binds from
# $W/docker-run (per container where berth's is).
python3 - "$W/probe.json" "$W/image.json" "$W/root" "$W/docker-run" "$PROBE" "$BENCH_LABEL=$W" \
    "$W/run-args" "$W/run-dirs" "$W/run-notes" <<'PY'
import json, os, sys
probe_path, image_path, root, scratch, probe, bench_label, args_path, dirs_path, notes_path = sys.argv[1:]
c = json.load(open(probe_path))[0]
image = json.load(open(image_path))[0]
hc, cfg, icfg = c["HostConfig"], c["Config"], image.get("Config") or {}
args, dirs, notes = [], set(), []

image_labels = icfg.get("Labels") or {}
labels = cfg.get("Labels") or {}
own = {k: v for k, v in labels.items() if k.startswith("berth.") and image_labels.get(k) != v}
for k, v in sorted(labels.items()):
    if k not in own and image_labels.get(k) != v:
        args += ["--label", f"{k}={v}"]
# berth's own labels (the app, the instance, the spec hash, the kept spec) are
# not copied (berth would take the containers for its own); one label of the same size stands in.
key, value = bench_label.split("=", 1)
size = sum(len(k) + len(v) for k, v in own.items())
pad_key = "berth.bench-scale.pad"
args += ["--label", "berth.test.sweep=1", "--label", bench_label,
         "--label", f"{pad_key}={'x' * max(0, size - len(key) - len(value) - len(pad_key))}"]
notes.append(f"labels: berth's own ({', '.join(sorted(own))}; {size} bytes) replaced by "
             f"{bench_label.split('=')[0]}=<work dir> and a pad label to the same size")

if hc.get("NanoCpus"):
    args += ["--cpus", f"{hc['NanoCpus'] / 1e9:g}"]
if hc.get("Memory"):
    args += ["--memory", f"{hc['Memory']}b"]
if hc.get("MemorySwap") not in (None, 0):
    args += ["--memory-swap", f"{hc['MemorySwap']}b" if hc["MemorySwap"] > 0 else "-1"]
if hc.get("PidsLimit"):
    args += ["--pids-limit", str(hc["PidsLimit"])]
log = hc.get("LogConfig") or {}
if log.get("Type"):
    args += ["--log-driver", log["Type"]]
    for k, v in sorted((log.get("Config") or {}).items()):
        args += ["--log-opt", f"{k}={v}"]
restart = hc.get("RestartPolicy") or {}
if restart.get("Name") not in (None, "", "no"):
    args += ["--restart", restart["Name"] + (f":{restart['MaximumRetryCount']}" if restart.get("MaximumRetryCount") else "")]
if hc.get("NetworkMode") not in (None, "", "default", "bridge"):
    args += ["--network", hc["NetworkMode"]]
for flag, key in (("--init", "Init"), ("--privileged", "Privileged"), ("--read-only", "ReadonlyRootfs")):
    if hc.get(key):
        args.append(flag)
for cap in hc.get("CapAdd") or []:
    args += ["--cap-add", cap]
for cap in hc.get("CapDrop") or []:
    args += ["--cap-drop", cap]
for opt in hc.get("SecurityOpt") or []:
    args += ["--security-opt", opt]
for path, opts in sorted((hc.get("Tmpfs") or {}).items()):
    args += ["--tmpfs", f"{path}:{opts}" if opts else path]

tether_run = os.path.join(root, "tether", "run") + "/"
for m in c.get("Mounts") or []:
    if m.get("Type") != "bind":
        if m.get("Type") == "volume" and len(m.get("Name", "")) == 64:
            notes.append(f"anonymous volume at {m['Destination']}: docker run makes its own (the image's VOLUME)")
        else:
            notes.append(f"NOT reproduced: {m.get('Type')} mount {m.get('Name') or m.get('Source')} at {m['Destination']}")
        continue
    src, dst = m["Source"], m["Destination"]
    if src.startswith(root + "/"):
        rel = os.path.relpath(src, root)
        parts = rel.split("/")
        if probe in parts:
            new, what = os.path.join(scratch, *["bench-run-{}" if p == probe else p for p in parts]), "per container"
        elif src.startswith(tether_run):
            new, what = os.path.join(scratch, "tether", "run", "bench-run-{}"), "per container"
        else:
            new, what = os.path.join(scratch, rel), "shared"
            dirs.add(new)
    else:
        new, what = src, "the same"
    args += ["-v", f"{new}:{dst}" + ("" if m.get("RW", True) else ":ro")]
    notes.append(f"bind {src} -> {dst}{'' if m.get('RW', True) else ' (ro)'}: docker run binds {new} ({what})")

for k in ("User", "WorkingDir", "StopSignal"):
    if cfg.get(k) and cfg.get(k) != icfg.get(k):
        args += [{"User": "--user", "WorkingDir": "--workdir", "StopSignal": "--stop-signal"}[k], cfg[k]]
for e in cfg.get("Env") or []:
    if e not in (icfg.get("Env") or []):
        args += ["-e", e]
if cfg.get("Tty"):
    args.append("-t")
if cfg.get("OpenStdin"):
    args.append("-i")
command = []
if (cfg.get("Entrypoint") or None) != (icfg.get("Entrypoint") or None):
    entry = cfg.get("Entrypoint") or [""]
    args += ["--entrypoint", entry[0]]
    command = entry[1:] + (cfg.get("Cmd") or [])
elif (cfg.get("Cmd") or None) != (icfg.get("Cmd") or None):
    command = cfg.get("Cmd") or []
with open(args_path, "wb") as f:
    for a in args + ["--", cfg["Image"]] + command:
        f.write(a.encode() + b"\0")
open(dirs_path, "w").write("".join(d + "\n" for d in sorted(dirs)))
open(notes_path, "w").write("".join(n + "\n" for n in notes))
PY
mapfile -d '' -t RUN_ARGS <"$W/run-args"
while read -r dir; do mkdir -p "$dir"; done <"$W/run-dirs"
say "docker run -d --name bench-run-NNNN, with the options of berth's container $PROBE (NNNN for {}):"
printf '    docker run -d --name bench-run-{}'
printf ' %q' "${RUN_ARGS[@]}" | sed 's/=xxxxxxxx*/=x…/; s/\\{\\}/{}/g'
printf '\n'
sed 's/^/    /' "$W/run-notes"

# Stage by stage (up to each boot size, then up to all the apps), $1 to $2, 8 at a time.
docker_run_range() {
    seq -f '%04g' "$1" "$2" | xargs -P"$PARALLEL_INSTALLS" -I{} docker run -d --name bench-run-{} "${RUN_ARGS[@]}" \
        >>"$W/run.log" 2>&1 9>&- || { tail -n 20 "$W/run.log" >&2; die "a docker run failed (bench-run-$1..$2)"; }
}
install_range() {
    seq -f 'bench-%04g' "$1" "$2" | xargs -P"$PARALLEL_INSTALLS" -I{} "$BERTH" --socket "$SOCK" install {} "$W/sample.tar" -y \
        >>"$W/install.log" 2>&1 9>&- || { tail -n 20 "$W/install.log" >&2; die "an install failed (apps bench-$1..$2)"; }
}

# ------------------------------------------------------------- 1. docker run
say "docker run -d of $APPS containers, $PARALLEL_INSTALLS at a time, in the stages of the installs (${STAGES[*]})"
first=1
for last in "${STAGES[@]}"; do
    now_us t0
    docker_run_range "$first" "$last"
    secs=$(secs_since "$t0")
    figure "run_stage_${first}_${last}_s" "$secs"
    printf '    %4d..%-4d  %8s s\n' "$first" "$last" "$secs"
    first=$((last + 1))
done
RUNNING=$(docker ps -q --filter "label=$BENCH_LABEL=$W" --filter status=running | wc -l)
[ "$RUNNING" -eq "$APPS" ] || die "$RUNNING of the $APPS docker run containers run"
docker inspect bench-run-0001 >"$W/run-0001.json"
# The two containers' options, compared (all of HostConfig and Config, but the binds' sources).
python3 - "$W/probe.json" "$W/run-0001.json" "$W/root" "$W/docker-run" >"$W/compare.txt" <<'PY'
import json, sys
a, b = (json.load(open(p))[0] for p in sys.argv[1:3])
skip_host = {"Binds", "Mounts"}
skip_config = {"Hostname", "Labels"}
diffs = []
empty = lambda v: None if v in ([], {}, "") else v  # the CLI sends [] where berth leaves a field out
for section, skip in (("HostConfig", skip_host), ("Config", skip_config)):
    for k in sorted(set(a[section]) | set(b[section])):
        if k not in skip and empty(a[section].get(k)) != empty(b[section].get(k)):
            diffs.append(f"{section}.{k}: berth {json.dumps(a[section].get(k))}, docker run {json.dumps(b[section].get(k))}")
mounts = lambda c: sorted((m.get("Type"), m.get("Destination"), m.get("RW"), m.get("Propagation")) for m in c.get("Mounts") or [])
if mounts(a) != mounts(b):
    diffs.append(f"Mounts: berth {mounts(a)}, docker run {mounts(b)}")
print("; ".join(diffs) if diffs else "none")
PY
say "options of $PROBE and bench-run-0001 that differ (binds' sources and labels aside): $(cat "$W/compare.txt")"
say "removing the docker run containers"
remove_containers "$BENCH_LABEL=$W"

# ---------------------------------------------- 5. boot convergence after a power cut
BOOT_TSV="$W/boot.tsv"
printf 'side\tapps\tround\tlaunch_us\tdone_us\tready_us\tpeak_fds\tevents\n' >"$BOOT_TSV"

boot_baseline() { # $1: N, $2: round
    local n=$1 round=$2 file="$W/events-baseline-$1-$2.txt" t0 t1 start
    start_events "$file"
    now_us t0
    instance_ids | xargs -P"$PARALLEL_STARTS" -n1 docker start >/dev/null 2>>"$W/start.log" 9>&- \
        || { tail -n 20 "$W/start.log" >&2; die "a docker start failed"; }
    now_us t1
    start=$SECONDS
    until [ "$(started "$file")" -ge "$n" ]; do
        ((SECONDS - start < 30)) || break
        sleep 0.1
    done
    stop_events
    printf 'baseline\t%s\t%s\t%s\t%s\t\t\t%s\n' "$n" "$round" "$t0" "$t1" "$file" >>"$BOOT_TSV"
    printf '    round %d  docker start, %d at a time   %8s s\n' "$round" "$PARALLEL_STARTS" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')"
    kill_apps
}

boot_berth() { # $1: N, $2: round, $3: 1 on the last turn (the daemon is left running)
    local n=$1 round=$2 last=$3 file="$W/events-berth-$1-$2.txt" ready="" start lines now stable=0 fds peak=0
    start_events "$file"
    launch_daemon
    start=$SECONDS
    until [ "$(started "$file")" -ge "$n" ]; do
        kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited during its boot"
        [ -n "$ready" ] || ! ready_now || now_us ready
        open_fds fds
        if ((fds > peak)); then peak=$fds; fi
        ((SECONDS - start < 60 + n)) || break
        sleep 0.1
    done
    # Until it is ready and no container has started again for 2 s: any start
    # past N (a container started twice) is counted.
    lines=$(wc -l <"$file")
    while ((stable < 4)); do
        kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon exited during its boot"
        [ -n "$ready" ] || ! ready_now || now_us ready
        open_fds fds
        if ((fds > peak)); then peak=$fds; fi
        sleep 0.5
        now=$(wc -l <"$file")
        if [ -n "$ready" ] && [ "$now" -eq "$lines" ]; then stable=$((stable + 1)); else stable=0 lines=$now; fi
        ((SECONDS - start < 120 + n)) || break
    done
    stop_events
    printf 'berth\t%s\t%s\t%s\t\t%s\t%s\t%s\n' "$n" "$round" "$LAUNCH_US" "$ready" "$peak" "$file" >>"$BOOT_TSV"
    printf '    round %d  berth daemon launched       %8s s to the last start event (%d starts of %d containers)\n' \
        "$round" "$(awk -v a="$LAUNCH_US" 'NR == 1 || $1 > m { m = $1 } END { printf "%.2f", (m / 1000 - a) / 1e6 }' "$file")" \
        "$(wc -l <"$file")" "$(started "$file")"
    if [ "$last" != 1 ]; then
        kill_daemon
        kill_apps
    fi
}

boot() { # $1: N (the apps installed now)
    local n=$1 round count
    count=$(instance_ids | wc -l)
    [ "$count" -eq "$n" ] || die "instance $INSTANCE has $count containers, expected $n"
    say "boot convergence with $n apps: SIGKILL to the daemon, docker kill of its $n containers; then, $BOOT_RUNS times, docker start ($PARALLEL_STARTS at a time) and the daemon's launch, taking turns"
    kill_daemon
    kill_apps
    for ((round = 1; round <= BOOT_RUNS; round++)); do
        boot_baseline "$n" "$round"
        boot_berth "$n" "$round" "$([ "$round" -eq "$BOOT_RUNS" ] && echo 1 || echo 0)"
    done
    wait_ready 120
    count=$(instance_ids --filter status=running | wc -l)
    [ "$count" -eq "$n" ] || say "after the boot $count of the $n containers run"
    figure "rss_after_boot_${n}_mib" "$(rss_mib)"
}

# ------------------------------------------------ 2, 3, 4. berth idle with all the apps
idle_figures() {
    say "settling for $SETTLE_SECS s, then the daemon's CPU over $IDLE_CPU_SECS s"
    sleep "$SETTLE_SECS"
    figure rss_apps_mib "$(rss_mib)"
    figure hwm_apps_mib "$(hwm_mib)"
    local ticks
    ticks=$(cpu_ticks)
    sleep "$IDLE_CPU_SECS"
    figure idle_cpu_ms $((($(cpu_ticks) - ticks) * 1000 / CLK_TCK))
    figure rss_after_idle_mib "$(rss_mib)"
    local fds
    open_fds fds
    figure fds_apps "$fds"
    "$BERTH" --socket "$SOCK" list --output json >"$W/list.json"
    local count running
    count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$W/list.json")
    running=$(python3 -c 'import json,sys; print(sum(a["state"] == "running" for a in json.load(open(sys.argv[1]))))' "$W/list.json")
    [ "$count" -eq "$APPS" ] || die "berth lists $count apps, expected $APPS"
    figure listed_running "$running"
    figure docker_count "$(docker ps -aq --filter label=berth.app | wc -l)"
    say "$count apps ($running running), daemon RSS $(rss_mib) MiB; hyperfine: --warmup 3 --runs $RUNS -N"
    q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # quoting for hyperfine -N (shell-words)
    local filter='%7B%22label%22%3A%5B%22berth.app%22%5D%7D' # {"label":["berth.app"]}
    hyperfine -N --warmup 3 --runs "$RUNS" --style basic --export-json "$W/hyperfine.json" \
        -n "berth list --output json" "$(q "$BERTH") --socket $(q "$SOCK") list --output json" \
        -n "docker ps -a --filter label=berth.app" "docker ps -a --filter label=berth.app" \
        -n "curl engine /containers/json (raw API)" \
        "curl -sf --unix-socket $DOCKER_SOCK 'http://x/containers/json?all=1&filters=$filter'" \
        9>&-
    figure rss_after_list_mib "$(rss_mib)"
}

# ------------------------------------------------------------ the berth installs
say "berth install of $APPS apps, $PARALLEL_INSTALLS at a time (each sends sample.tar; start_check_ms = 100), in stages (${STAGES[*]}), boot convergence measured at ${SIZES[*]}"
first=1
for last in "${STAGES[@]}"; do
    now_us t0
    install_range "$first" "$last"
    secs=$(secs_since "$t0")
    figure "install_stage_${first}_${last}_s" "$secs"
    printf '    %4d..%-4d  %8s s  (daemon RSS %s MiB)\n' "$first" "$last" "$secs" "$(rss_mib)"
    first=$((last + 1))
    [ "$last" -ne "$APPS" ] || idle_figures
    if printf '%s\n' "${SIZES[@]}" | grep -qx "$last"; then boot "$last"; fi
done
figure hwm_end_mib "$(hwm_mib)"
figure rss_end_mib "$(rss_mib)"

# ------------------------------------------------------------------ summary
{
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'ram\t%s\n' "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'docker_engine\t%s\n' "$(docker version --format '{{.Server.Version}}' 2>/dev/null)"
    printf 'docker_cli\t%s\n' "$(docker version --format '{{.Client.Version}}' 2>/dev/null)"
    printf 'storage_driver\t%s\n' "$(docker info --format '{{.Driver}}' 2>/dev/null)"
    printf 'berth\t%s\n' "$("$BERTH" --version)"
    printf 'hyperfine\t%s\n' "$(hyperfine --version)"
    printf 'load_start\t%s\n' "$LOAD_START"
    printf 'load_after_build\t%s\n' "$LOAD_MEASURED"
    printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$W/figures.tsv"
python3 - "$W/figures.tsv" "$W/hyperfine.json" "$BOOT_TSV" "$W/compare.txt" "${BENCH_EXPORT:-}" \
    "$APPS" "$PARALLEL_INSTALLS" "$PARALLEL_STARTS" "$IDLE_CPU_SECS" "$SETTLE_SECS" \
    "$TARGET_INSTALL_RATIO" "$TARGET_LIST_SPEEDUP" "$TARGET_RSS_MIB" "$TARGET_IDLE_CPU_MS" \
    "$TARGET_BOOT_RATIO" "$TARGET_FIRST_APP_S" <<'PY'
import csv, json, statistics, sys
(figures_path, hyperfine_path, boot_path, compare_path, export, apps, p_install, p_start, cpu_secs, settle,
 t_install, t_list, t_rss, t_cpu, t_boot, t_first) = sys.argv[1:]
apps, t_install, t_list, t_rss, t_cpu, t_boot, t_first = (
    int(apps), float(t_install), float(t_list), float(t_rss), int(t_cpu), float(t_boot), float(t_first))
fig = dict(line.rstrip("\n").split("\t", 1) for line in open(figures_path))
num = lambda k: float(fig[k])

stages = lambda prefix: sorted(((int(k.split("_")[2]), int(k.split("_")[3]), float(v))
                               for k, v in fig.items() if k.startswith(prefix + "_stage_")))
run_stages, install_stages = stages("run"), stages("install")
run_total, install_total = sum(s for *_, s in run_stages), sum(s for *_, s in install_stages)

results = json.load(open(hyperfine_path))["results"]
berth_list, docker_ps, raw_api = results
list_speedup = docker_ps["mean"] / berth_list["mean"]

def events(path):
    out = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]) / 1000, parts[1]))  # µs since the epoch, the container
    return sorted(out)

boots = []
for r in csv.DictReader(open(boot_path), delimiter="\t"):
    n, launch = int(r["apps"]), int(r["launch_us"])
    ev = events(r["events"])
    seen, converged_at = set(), None
    for t, cid in ev:
        seen.add(cid)
        if len(seen) == n and converged_at is None:
            converged_at = t
    b = {"side": r["side"], "apps": n, "round": int(r["round"]), "starts": len(ev), "containers": len(seen),
         "converged": converged_at is not None,
         "first_start_s": (ev[0][0] - launch) / 1e6 if ev else None,
         "last_start_s": (converged_at - launch) / 1e6 if converged_at else None,
         "ready_s": (int(r["ready_us"]) - launch) / 1e6 if r["ready_us"] else None,
         "peak_open_files": int(r["peak_fds"]) if r["peak_fds"] else None}
    if r["side"] == "baseline":
        b["wall_s"] = (int(r["done_us"]) - launch) / 1e6
    b["time_s"] = b["wall_s"] if r["side"] == "baseline" else b["last_start_s"]
    if ev and converged_at and converged_at > ev[0][0]:
        b["starts_per_s"] = (n - 1) / ((converged_at - ev[0][0]) / 1e6)
    boots.append(b)

def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None

rows = []  # figure, berth, baseline, ratio, target, ok
def row(name, berth, base, ratio, target, ok):
    rows.append((name, berth, base, ratio, target, ok))
    return ok

verdict = {}
install_ratio = install_total / run_total
verdict["installs"] = row(f"{apps} installs, {p_install} in parallel", f"{install_total:.1f} s", f"{run_total:.1f} s",
                          f"{install_ratio:.2f}x", f"≤ {t_install:g}x docker run", install_ratio <= t_install)
verdict["list"] = row(f"list, {apps} apps (hyperfine mean)", f"{berth_list['mean']*1e3:.1f} ms",
                      f"{docker_ps['mean']*1e3:.1f} ms", f"{list_speedup:.1f}x faster",
                      f"≥ {t_list:g}x faster than docker ps", list_speedup >= t_list)
rss_apps = max(num("rss_apps_mib"), num("rss_after_idle_mib"), num("rss_after_list_mib"))
verdict["rss"] = row(f"daemon RSS idle, {apps} apps", f"{rss_apps:.1f} MiB", "", "", f"< {t_rss:g} MiB", rss_apps < t_rss)
idle_cpu = int(fig["idle_cpu_ms"])
verdict["idle_cpu"] = row(f"daemon CPU idle, {apps} apps", f"{idle_cpu} ms / {cpu_secs} s", "", "",
                          f"≤ {t_cpu} ms / {cpu_secs} s", idle_cpu <= t_cpu)
boot_summary = []
for n in sorted({b["apps"] for b in boots}):
    mine = [b for b in boots if b["apps"] == n and b["side"] == "berth"]
    base = [b for b in boots if b["apps"] == n and b["side"] == "baseline"]
    converged = all(b["converged"] for b in mine + base)
    tb, tbase = mean(b["time_s"] for b in mine), mean(b["time_s"] for b in base)
    first = max((b["first_start_s"] for b in mine if b["first_start_s"] is not None), default=None)
    extra = sum(b["starts"] - b["containers"] for b in mine)
    ratio = tb / tbase if converged and tb and tbase else None
    ok = ratio is not None and ratio <= t_boot
    verdict[f"boot_{n}"] = row(f"boot convergence, {n} apps (mean of {len(mine)})",
                               f"{tb:.2f} s" if converged else f"not all ({min(b['containers'] for b in mine)}/{n})",
                               f"{tbase:.2f} s" if tbase else "—", f"{ratio:.2f}x" if ratio else "—",
                               f"≤ {t_boot:g}x docker start (-P{p_start})", ok)
    verdict[f"first_app_{n}"] = row(f"first app running, {n} apps (worst of {len(mine)})",
                                    f"{first:.2f} s" if first is not None else "none", "", "",
                                    f"≤ {t_first:g} s after launch", first is not None and first <= t_first)
    boot_summary.append({"apps": n, "berth_s": tb, "docker_start_s": tbase, "ratio": ratio, "first_app_s": first,
                         "extra_starts": extra, "converged": converged})

print()
print(f"berth at appliance scale: {apps} apps")
print()
print(f"installs, {p_install} in parallel, in stages (wall time, s)")
print(f"  {'apps':<12} {'berth install':>14} {'docker run -d':>14} {'ratio':>7}")
for (a0, a1, bs), (_, _, rs) in zip(install_stages, run_stages):
    print(f"  {f'{a0}..{a1}':<12} {bs:14.2f} {rs:14.2f} {bs / rs:6.2f}x")
print(f"  {'total':<12} {install_total:14.2f} {run_total:14.2f} {install_ratio:6.2f}x")
print(f"  per app: berth {install_total / apps * 1e3:.0f} ms, docker run {run_total / apps * 1e3:.0f} ms (wall / count)")
print("  berth's install sends the archive each time (the engine, which has the image with its tag, is not asked to load it again),")
print("  and waits start_check_ms = 100 for the app to stay up; docker run starts from the image by id.")
diffs = open(compare_path).read().strip()
print(f"  options differing between berth's container and docker run's (binds' sources, labels aside): {diffs}")
print("  berth's tether binds (under <root>/tether) and private dir are matched by binds from a scratch dir of the same shape.")
print()
print(f"list with {apps} apps (hyperfine -N, {len(berth_list['times'])} runs each, --warmup 3)")
print(f"  {'command':<42} {'mean ms':>9} {'stddev':>8} {'median':>8} {'min':>8}  {'vs berth list':>13}")
for r in results:
    print(f"  {r['command']:<42} {r['mean']*1e3:9.2f} {r['stddev']*1e3:8.2f} {r['median']*1e3:8.2f} "
          f"{r['min']*1e3:8.2f}  {r['mean'] / berth_list['mean']:12.2f}x")
print(f"  docker ps lists {fig['docker_count']} containers labelled berth.app (every berth instance's); "
      f"berth lists {apps} ({fig['listed_running']} running)")
print()
print("daemon memory and CPU")
print(f"  RSS idle, no apps                {num('rss_idle_mib'):8.1f} MiB")
print(f"  RSS idle, {apps} apps ({settle} s settled)  {num('rss_apps_mib'):8.1f} MiB  (after the CPU window "
      f"{num('rss_after_idle_mib'):.1f}, after the list benchmark {num('rss_after_list_mib'):.1f})")
print(f"  VmHWM after the installs         {num('hwm_apps_mib'):8.1f} MiB  (at the end, after the boots: {num('hwm_end_mib'):.1f})")
for k in sorted((k for k in fig if k.startswith("rss_after_boot_")), key=lambda k: int(k.split("_")[3])):
    print(f"  RSS after the boot with {k.split('_')[3]} apps  {num(k):8.1f} MiB")
print(f"  open files                       {fig['fds_idle']:>8} idle with no apps, {fig['fds_apps']} idle with {apps} apps")
print(f"  CPU (utime + stime) idle with {apps} apps: {idle_cpu} ms over {cpu_secs} s "
      f"(clock ticks of 10 ms; PASS at ≤ {t_cpu} ms, one tick)")
print()
print(f"boot convergence after a power cut (SIGKILL to the daemon, docker kill of the containers); "
      f"times from the launch of the daemon / of the first docker start")
print(f"  {'apps':>5} {'round':>5} {'side':<22} {'first start':>11} {'last start':>10} {'done':>8} {'ready':>7} "
      f"{'starts':>7} {'containers':>10} {'starts/s':>8} {'open files':>10}")
f = lambda v, d=2: "—" if v is None else f"{v:.{d}f}"
for b in boots:
    side = "berth daemon" if b["side"] == "berth" else f"docker start -P{p_start}"
    print(f"  {b['apps']:5d} {b['round']:5d} {side:<22} {f(b['first_start_s']):>11} {f(b['last_start_s']):>10} "
          f"{f(b.get('wall_s')):>8} {f(b['ready_s']):>7} {b['starts']:7d} {b['containers']:10d} {f(b.get('starts_per_s'), 1):>8} {f(b['peak_open_files'], 0):>10}")
print("  berth's time is its launch → the engine's start event of the last container; docker start's is the")
print("  wall time of the xargs (first command → last one done). 'ready': /v1/info said ready; 'open files': the")
print("  daemon's most open file descriptors during its boot (both polled every 0.1 s).")
for s in boot_summary:
    if s["extra_starts"]:
        print(f"  NOTE: with {s['apps']} apps berth started containers {s['extra_starts']} time(s) more than once")

print()
print("summary")
print(f"  {'figure':<44} {'berth':>16} {'baseline':>12} {'ratio':>13}  {'target':<32} result")
for name, berth, base, ratio, target, ok in rows:
    print(f"  {name:<44} {berth:>16} {base:>12} {ratio:>13}  {target:<32} {'PASS' if ok else 'FAIL'}")
print(f"  machine: {fig['nproc']} CPUs ({fig['cpu']}), {fig['ram']} RAM, kernel {fig['kernel']}")
print(f"  docker: engine {fig['docker_engine']} (storage {fig['storage_driver']}), CLI {fig['docker_cli']}; "
      f"{fig['hyperfine']}; {fig['berth']}")
print(f"  load average: {fig['load_start']} at the start, {fig['load_after_build']} after the build, {fig['load_end']} at the end")

if export:
    out = {
        "apps": apps,
        "machine": {k: fig[k] for k in ("nproc", "cpu", "ram", "kernel", "docker_engine", "docker_cli",
                                        "storage_driver", "berth", "hyperfine")},
        "load": {k: fig[k] for k in ("load_start", "load_after_build", "load_end")},
        "installs": {"parallel": int(p_install), "berth_s": install_total, "docker_run_s": run_total,
                     "ratio": install_ratio, "stages": [{"apps": [a0, a1], "berth_s": bs, "docker_run_s": rs}
                                                        for (a0, a1, bs), (_, _, rs) in zip(install_stages, run_stages)],
                     "option_differences": diffs},
        "list": {r["command"]: {k: r[k] for k in ("mean", "stddev", "median", "min", "max")} for r in results},
        "list_speedup": list_speedup,
        "memory_mib": {k: num(k) for k in fig if k.endswith("_mib")},
        "open_files": {"idle": int(fig["fds_idle"]), "apps": int(fig["fds_apps"])},
        "idle_cpu_ms": idle_cpu, "idle_cpu_window_s": int(cpu_secs),
        "boot": boot_summary, "boot_runs": boots,
        "targets": {"install_ratio": t_install, "list_speedup": t_list, "rss_mib": t_rss, "idle_cpu_ms": t_cpu,
                    "boot_ratio": t_boot, "first_app_s": t_first},
        "pass": verdict,
    }
    with open(export, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"  figures written to {export}")
PY
