#!/usr/bin/env bash
# berth benchmark: one SRA command round trip (issue 4). Three ways of running
# the same quick SRA command in the same, already running execution container,
# measured side by side in one hyperfine run:
#   a. `berth sra exec --image <id> --tmp-dir T --log-dir L < cmd.xml`
#   b. the SRA specification's "Detailed Running Procedure" with the docker CLI,
#      step by step as written (docker inspect, sha1sum, docker container ls,
#      ls -a / start / run only when needed, docker exec -i -u 660:660)
#   c. berth-raw-exec: the three Engine API requests of an exec (create, start
#      attached, inspect) from a small std-only client, on the container of a.
# berth runs the command through its tether (issue 12): an agent in the
# execution container, reached by a unix socket, in place of an exec.
# Prints the figures and pass/fail against the targets (berth at most 0.6x the
# docker CLI procedure and at most 0.2x the raw API exec; see docs/PERFORMANCE.md);
# it exits 0 whether or not the targets are met, and non-zero only when
# something broke.
#
# Usage, from the repository root:   scripts/bench-sra.sh
# Environment:
#   CARGO_TARGET_DIR  build directory (default ~/.cache/berth/target)
#   BENCH_RUNS        hyperfine runs per command (default 30)
#   BENCH_EXPORT      if set, the hyperfine JSON is copied to this path
#   BENCH_DAEMON_LOG  if set, the daemon's log is copied to this path at exit
#                     (RUST_LOG=debug makes it say more)
#
# Everything the run creates (daemon, the execution container(s) of the SRA
# image, the image, the work directory) is removed on exit. If a run was
# killed with SIGKILL, the next run finds its state file and removes its
# leftovers first.
set -euo pipefail

RUNS="${BENCH_RUNS:-30}"
TARGET_VS_CLI=0.6
TARGET_VS_RAW=0.2
IMAGE_TAG="berth-bench/sra:1"
SRA_USER="660:660"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_NAME=bench-sra
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"

# ---------------------------------------------------------------- prerequisites
command -v docker >/dev/null || die "the docker CLI is needed (it is the comparison baseline)"
command -v python3 >/dev/null || die "python3 is needed"
command -v sha1sum >/dev/null || die "sha1sum is needed (the docker CLI procedure uses it)"
command -v cargo >/dev/null || die "cargo is needed"
command -v curl >/dev/null || apt_install curl
require_engine
command -v hyperfine >/dev/null || apt_install hyperfine

# -------------------------------------------------- one run at a time, leftovers
take_lock

remove_sra_containers() { # $1: image id; its execution containers (label srm.sra.eid)
    local ids
    ids=$(docker ps -aq --filter "ancestor=$1" --filter label=srm.sra.eid)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        docker rm -f -v $ids >/dev/null || true
    fi
}

remove_image() { # the benchmark image's tag, if it is the benchmark's (labelled as a test image)
    local label
    label=$(docker image inspect --format '{{index .Config.Labels "berth.test.sweep"}}' "$IMAGE_TAG" 2>/dev/null) || return 0
    [ "$label" = 1 ] || die "$IMAGE_TAG exists and is not a benchmark image; remove it first"
    remove_sra_containers "$(docker image inspect --format '{{.Id}}' "$IMAGE_TAG")"
    docker rmi -f "$IMAGE_TAG" >/dev/null
}

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_IMAGE:-}" ]; then
            remove_sra_containers "$OLD_IMAGE"
            docker rmi -f "$OLD_IMAGE" >/dev/null 2>&1 || true
        fi
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
build_release_binaries

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench-sra.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
IMAGE_ID=""

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_IMAGE=%q\n' "$W" "$DAEMON_PID" "$IMAGE_ID" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    trap '' PIPE # the output may be gone (`… | head`): clean up all the same
    set +e
    say "cleaning up"
    stop_daemon "$DAEMON_PID" "$W"
    if [ -n "$IMAGE_ID" ]; then
        remove_sra_containers "$IMAGE_ID"
        docker rmi -f "$IMAGE_ID" >/dev/null 2>&1
    fi
    finish_cleanup "$status"
}
trap_cleanup
save_state
remove_image

# ---------------------------------------------------------------- the SRA image
# A quick, realistic SRA command: it reads the whole command XML, writes a
# small response to the OutputFile and the final progress to the StatusFile.
cat >"$W/command.sh" <<'SH'
#!/bin/sh
input=$(cat)
out=$(printf '%s\n' "$input" | sed -n 's:.*<OutputFile>\(.*\)</OutputFile>.*:\1:p')
status=$(printf '%s\n' "$input" | sed -n 's:.*<StatusFile>\(.*\)</StatusFile>.*:\1:p')
cat >"$out" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<Response xmlns="http://www.vmware.com/srm/sra/v2">
  <AdapterInfo>
    <Name>berth-bench</Name>
    <Version>1.0</Version>
    <Vendor>berth</Vendor>
  </AdapterInfo>
</Response>
XML
echo '<ProgressUpdate xmlns="http://www.vmware.com/srm/sra/v2">100</ProgressUpdate>' >"$status"
exit 0
SH
cat >"$W/cmd.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<Command xmlns="http://www.vmware.com/srm/sra/v2">
  <Name>queryInfo</Name>
  <OutputFile>/tmp/out.xml</OutputFile>
  <StatusFile>/tmp/status.xml</StatusFile>
  <LogLevel>info</LogLevel>
  <LogDirectory>/srm/sra/log</LogDirectory>
</Command>
XML

# The specification's procedure with the docker CLI, literally.
# Arguments: image tmp-dir log-dir; the command XML on stdin.
cat >"$W/docker-procedure" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
image=$1 tmp_dir=$2 log_dir=$3
image_id=$(docker inspect --format "{{ .Id }}" "$image")
eid=$(printf '%s' "$image_id$tmp_dir$log_dir" | sha1sum | cut -d' ' -f1)
cid=$(docker container ls -f "label=srm.sra.eid=$eid" -q)
if [ -z "$cid" ]; then
    cid=$(docker container ls -a -f "label=srm.sra.eid=$eid" -q)
    if [ -n "$cid" ]; then
        docker start "${cid%%$'\n'*}" >/dev/null
    else
        cid=$(docker run -di -v "$tmp_dir:/tmp" -v "$log_dir:/srm/sra/log" -l "srm.sra.eid=$eid" "$image_id")
    fi
fi
exec docker exec -i -u 660:660 "${cid%%$'\n'*}" /srm/sra/command
SH
chmod 0755 "$W/docker-procedure"

IMAGE_ID=$("$MKIMAGE" --tag "$IMAGE_TAG" --out "$W/sra.tar" --label berth.test.sweep=1 \
    --label com.vmware.srm.sra=berth-bench --file "/srm/sra/command=$W/command.sh:755")
save_state

# -------------------------------------------------------------------- daemon
start_daemon
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE"
"$BERTH" --socket "$SOCK" sra load "$W/sra.tar" >"$W/run.log" 2>&1 || die "berth sra load failed: $(cat "$W/run.log")"
say "$(cat "$W/run.log")"

TMP_DIR="$W/sra-tmp"
LOG_DIR="$W/sra-log"
mkdir -p "$TMP_DIR" "$LOG_DIR"
chmod 0777 "$TMP_DIR" "$LOG_DIR" # the command runs as $SRA_USER
EID=$(printf '%s' "$IMAGE_ID$TMP_DIR$LOG_DIR" | sha1sum | cut -d' ' -f1)

eid_containers() { docker container ls -a -q --no-trunc -f "label=srm.sra.eid=$EID"; }
check_output() { # $1: what ran
    grep -q '<Name>berth-bench</Name>' "$TMP_DIR/out.xml" 2>/dev/null || die "$1: no response in $TMP_DIR/out.xml"
    grep -q '>100</ProgressUpdate>' "$TMP_DIR/status.xml" 2>/dev/null || die "$1: no progress in $TMP_DIR/status.xml"
    rm -f "$TMP_DIR/out.xml" "$TMP_DIR/status.xml"
}

# ------------------------------------------------------------------ warm-up
# berth creates the execution container; the two others must find and use it.
say "warm-up: berth sra exec creates the execution container (eid $EID)"
"$BERTH" --socket "$SOCK" sra exec --image "$IMAGE_ID" --tmp-dir "$TMP_DIR" --log-dir "$LOG_DIR" \
    <"$W/cmd.xml" >"$W/run.log" 2>&1 || die "berth sra exec failed"
check_output "berth sra exec"
CONTAINER=$(eid_containers)
if [ -z "$CONTAINER" ] || [ "$(wc -l <<<"$CONTAINER")" -ne 1 ]; then
    die "expected one container with srm.sra.eid=$EID, found: ${CONTAINER:-none}"
fi
"$W/docker-procedure" "$IMAGE_ID" "$TMP_DIR" "$LOG_DIR" <"$W/cmd.xml" >"$W/run.log" 2>&1 || die "the docker CLI procedure failed"
check_output "the docker CLI procedure"
"$RAW_EXEC" --socket "$DOCKER_SOCK" --container "$CONTAINER" --user "$SRA_USER" /srm/sra/command \
    <"$W/cmd.xml" >"$W/run.log" 2>&1 || die "berth-raw-exec failed"
check_output "berth-raw-exec"
[ "$(eid_containers)" = "$CONTAINER" ] || die "the procedures did not share one execution container: $(eid_containers | tr '\n' ' ')"
say "execution container ${CONTAINER:0:12}; all three ways ran the command in it"
docker top "$CONTAINER" -o pid,args | grep -q '[b]erth-tether serve' ||
    die "berth's tether agent does not run in the execution container"
say "berth's commands go through its tether agent in that container"

# ---------------------------------------------------------------- hyperfine
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # quoting for the shell hyperfine runs the commands with
say "hyperfine: --warmup 3 --runs $RUNS (each command through sh, for the < redirection; hyperfine subtracts the shell's start-up)"
hyperfine --warmup 3 --runs "$RUNS" --style basic --export-json "$W/hyperfine.json" \
    -n "berth sra exec" \
    "$(q "$BERTH") --socket $(q "$SOCK") sra exec --image $(q "$IMAGE_ID") --tmp-dir $(q "$TMP_DIR") --log-dir $(q "$LOG_DIR") < $(q "$W/cmd.xml")" \
    -n "docker CLI procedure" \
    "$(q "$W/docker-procedure") $(q "$IMAGE_ID") $(q "$TMP_DIR") $(q "$LOG_DIR") < $(q "$W/cmd.xml")" \
    -n "raw Engine API (berth-raw-exec)" \
    "$(q "$RAW_EXEC") --socket $DOCKER_SOCK --container $CONTAINER --user $SRA_USER /srm/sra/command < $(q "$W/cmd.xml")"
check_output "the benchmark"
[ "$(eid_containers)" = "$CONTAINER" ] || die "the execution container changed during the benchmark: $(eid_containers | tr '\n' ' ')"
[ -z "${BENCH_EXPORT:-}" ] || cp "$W/hyperfine.json" "$BENCH_EXPORT"

# ------------------------------------------------------------------ summary
python3 - "$W/hyperfine.json" "$TARGET_VS_CLI" "$TARGET_VS_RAW" <<'PY'
import json, sys
path, target_cli, target_raw = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
berth, cli, raw = json.load(open(path))["results"]
print()
print(f"one SRA command round trip (hyperfine, {len(berth['times'])} runs each)")
print(f"  {'command':<34} {'mean ms':>9} {'stddev':>8} {'median':>8} {'min':>8} {'max':>8}")
for r in (berth, cli, raw):
    print(f"  {r['command']:<34} {r['mean']*1e3:9.2f} {r['stddev']*1e3:8.2f} {r['median']*1e3:8.2f} "
          f"{r['min']*1e3:8.2f} {r['max']*1e3:8.2f}")
vs_cli = berth["mean"] / cli["mean"]
vs_raw = berth["mean"] / raw["mean"]
print()
print("summary")
for name, r in (("a. berth sra exec", berth), ("b. docker CLI procedure", cli), ("c. raw Engine API", raw)):
    print(f"  {name:<28} {r['mean']*1e3:8.2f} ms ± {r['stddev']*1e3:.2f}")
print(f"  ratio berth / docker CLI     {vs_cli:8.3f}")
print(f"  ratio berth / raw API        {vs_raw:8.3f}")
print(f"  target: berth <= {target_cli}x the docker CLI procedure   {'PASS' if vs_cli <= target_cli else 'FAIL'} ({vs_cli:.3f})")
print(f"  target: berth <= {target_raw}x the raw Engine API         {'PASS' if vs_raw <= target_raw else 'FAIL'} ({vs_raw:.3f})")
PY
printf '  machine: %s CPUs (%s), %s RAM, kernel %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf '  docker: engine %s (runtime %s), CLI %s; %s; %s\n' \
    "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null)" \
    "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" \
    "$(hyperfine --version)" "$("$BERTH" --version)"
printf '  load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
