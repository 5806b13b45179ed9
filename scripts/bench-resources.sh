#!/usr/bin/env bash
# berth benchmark: a resource Install through the Resource Manager API
# (issue 9). Side by side in one hyperfine run:
#   a. `POST /api/resource-manager/lifecycle/transitions` (Install of a small
#      scripted type) over berth's socket with curl, then the request's status
#      polled until COMPLETED (10 ms between polls);
#   b. the same work by hand with the docker CLI: `docker run -d` of the type's
#      image (same CPU limit as berth gives it), `docker exec` writing the
#      params file, `docker exec` of the install script, `docker exec cat` of
#      the params file;
# then 50 concurrent Installs through the API (all posted at once, then waited
# for), and for reference 50 concurrent docker CLI sequences (xargs -P 50).
# Prints the figures and pass/fail against the targets (berth at most 0.6x the
# CLI sequence; all 50 concurrent Installs COMPLETED; see docs/PERFORMANCE.md);
# it exits 0 whether or not the targets are met, and non-zero only when
# something broke.
#
# Usage, from the repository root:   scripts/bench-resources.sh
# Environment:
#   CARGO_TARGET_DIR    build directory (default ~/.cache/berth/target)
#   BENCH_RUNS          hyperfine runs per command (default 10)
#   BENCH_CONCURRENT    number of concurrent Installs (default 50)
#   BENCH_EXPORT        if set, the hyperfine JSON is copied to this path
#   BENCH_DAEMON_LOG    if set, the daemon's log is copied to this path at exit
#                       (RUST_LOG=debug makes it say more)
#
# Everything the run creates (daemon, the instances' containers, the CLI's
# containers, the type's image, the base image if this run built it, the
# work directory) is removed on exit. If a run was killed with SIGKILL, the
# next run finds its state file and removes its leftovers first.
set -euo pipefail

RUNS="${BENCH_RUNS:-10}"
CONCURRENT="${BENCH_CONCURRENT:-50}"
TARGET_VS_CLI=0.6
BASE_IMAGE=dockerrm_baseimage

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_NAME=bench-resources
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$RUNS'"
[[ "$CONCURRENT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENT must be a positive number, not '$CONCURRENT'"

# ---------------------------------------------------------------- prerequisites
require_bench_tools

# -------------------------------------------------- one run at a time, leftovers
take_lock

BENCH_LABEL=berth.bench-resources # on the docker CLI's containers, = the work dir
remove_images_of() { # $1: a berth instance id; the images it built (labelled with it)
    local ids
    ids=$(docker images -q --filter "label=berth.instance=$1" | sort -u)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        docker rmi -f $ids >/dev/null 2>&1 || true
    fi
}
remove_base_image() { # only when the run built it; never by force (other berths share it)
    docker rmi "$BASE_IMAGE" >/dev/null 2>&1 || true
}

if [ -s "$STATE_FILE" ]; then
    say "removing the leftovers of an interrupted run ($STATE_FILE)"
    # shellcheck disable=SC1090
    (
        . "$STATE_FILE"
        stop_daemon "${OLD_PID:-}" "${OLD_W:-/nonexistent}"
        if [ -n "${OLD_INSTANCE:-}" ]; then
            remove_containers "berth.instance=$OLD_INSTANCE"
            remove_images_of "$OLD_INSTANCE"
        fi
        if [ -n "${OLD_W:-}" ]; then remove_containers "$BENCH_LABEL=$OLD_W"; fi
        if [ "${OLD_BASE_BUILT:-0}" = 1 ]; then remove_base_image; fi
        if [ -n "${OLD_W:-}" ]; then rm -rf "$OLD_W"; fi
    )
    rm -f "$STATE_FILE"
fi

# --------------------------------------------------------------------- build
build_release_binaries

# ---------------------------------------------------------- work dir, cleanup
W=$(mktemp -d -t berth-bench-resources.XXXXXX)
SOCK="$W/berth.sock"
DAEMON_PID=""
INSTANCE=""
BASE_BUILT=0
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || BASE_BUILT=1

save_state() {
    printf 'OLD_W=%q\nOLD_PID=%q\nOLD_INSTANCE=%q\nOLD_BASE_BUILT=%q\n' \
        "$W" "$DAEMON_PID" "$INSTANCE" "$BASE_BUILT" >"$STATE_FILE"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    trap '' PIPE # the output may be gone (`… | head`): clean up all the same
    set +e
    say "cleaning up"
    stop_daemon "$DAEMON_PID" "$W"
    if [ -n "$INSTANCE" ]; then
        remove_containers "berth.instance=$INSTANCE"
        remove_images_of "$INSTANCE"
    fi
    remove_containers "$BENCH_LABEL=$W"
    [ "$BASE_BUILT" = 1 ] && remove_base_image
    finish_cleanup "$status"
}
trap_cleanup
save_state

# ------------------------------------------------------------------ the package
# A small scripted type in the seed's layout: one property, Install and
# Uninstall, each script setting one property with the base image's setProperty.
NAME="berthbench_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
TYPE="resource::$NAME::1.0"
IMAGE="dockerrm_$NAME"
PKG="$W/packages/$NAME"
mkdir -p "$PKG/lifecycle"
cat >"$PKG/resource.yaml" <<YAML
name: $TYPE
description: berth's resource benchmark type
properties:
  greeting:
    type: string
    default: hello
lifecycle:
  - Install
  - Uninstall
YAML
cat >"$PKG/lifecycle/lifecycle.yaml" <<'YAML'
version: 1
lifecycle:
  install: /opt/lifecycle/install.sh
  uninstall: /opt/lifecycle/uninstall.sh
YAML
printf '#!/bin/sh\nset -e\nsetProperty done yes\n' >"$PKG/lifecycle/install.sh"
printf '#!/bin/sh\nset -e\nsetProperty done yes\n' >"$PKG/lifecycle/uninstall.sh"
cat >"$PKG/Dockerfile" <<'DOCKERFILE'
FROM dockerrm_baseimage
ADD lifecycle /opt/lifecycle
RUN chmod 755 /opt/lifecycle/*
DOCKERFILE

# ------------------------------------------------------------------ the clients
# a. berth: one Install through the API, polled until it ends. Each run's
# instance has a name of its own. One line per run in $4:
#   name  requestId  post_ms  total_ms  polls  the request's reason
mkfifo "$W/never" # read -t on it: a 10 ms pause without starting a process
cat >"$W/berth-install" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
sock=$1 type=$2 never=$3 log=$4
rm=http://x/api/resource-manager
t=$EPOCHREALTIME; t0=${t//[.,]/}
name="bench-$$-$t0"
body=$(printf '{"deploymentLocation":"local","resourceType":"%s","transitionName":"Install","resourceName":"%s","properties":{"greeting":"hello"}}' "$type" "$name")
answer=$(curl -sS --fail-with-body --unix-socket "$sock" -H 'Content-Type: application/json' -d "$body" "$rm/lifecycle/transitions")
t=$EPOCHREALTIME; t1=${t//[.,]/}
[[ $answer =~ \"requestId\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]] || { echo "no requestId in: $answer" >&2; exit 1; }
id=${BASH_REMATCH[1]}
exec 3<>"$never"
polls=0
while :; do
    status=$(curl -sS --fail-with-body --unix-socket "$sock" "$rm/lifecycle/transitions/$id/status")
    polls=$((polls + 1))
    case $status in
        *'"requestState":"COMPLETED"'*) break ;;
        *'"requestState":"FAILED"'*) echo "request $id FAILED: $status" >&2; exit 1 ;;
    esac
    read -r -t 0.01 -u 3 _ || :
done
t=$EPOCHREALTIME; t2=${t//[.,]/}
reason=""
[[ $status =~ \"requestStateReason\"[[:space:]]*:[[:space:]]*\"([^\"]*)\" ]] && reason=${BASH_REMATCH[1]}
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$id" $(((t1 - t0) / 1000)) $(((t2 - t0) / 1000)) "$polls" "$reason" >>"$log"
SH
# b. the docker CLI, by hand: the same image, CPU limit, environment and
# script; the params written and read back with exec. One line per run in $4:
#   name  run_ms  write_ms  script_ms  read_ms  total_ms
cat >"$W/cli-install" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
image=$1 cpus=$2 label=$3 log=$4
# What berth writes to /opt/rmparams for this request (render_params).
params=$'# written by berth\n"greeting": "hello"\n'
t=$EPOCHREALTIME; t0=${t//[.,]/}
name="bench-cli-$$-$t0"
docker run -d --name "$name" --label "$label" --cpus "$cpus" -e RM_PROP_greeting=hello "$image" >/dev/null
t=$EPOCHREALTIME; t1=${t//[.,]/}
docker exec "$name" sh -c 'printf "%s" "$1" >/opt/rmparams' sh "$params"
t=$EPOCHREALTIME; t2=${t//[.,]/}
docker exec "$name" /opt/lifecycle/install.sh
t=$EPOCHREALTIME; t3=${t//[.,]/}
after=$(docker exec "$name" cat /opt/rmparams)
t=$EPOCHREALTIME; t4=${t//[.,]/}
[[ $after == *'"done": "yes"'* ]] || { echo "$name: the script did not set done: $after" >&2; exit 1; }
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" $(((t1 - t0) / 1000)) $(((t2 - t1) / 1000)) $(((t3 - t2) / 1000)) \
    $(((t4 - t3) / 1000)) $(((t4 - t0) / 1000)) >>"$log"
SH
chmod 0755 "$W/berth-install" "$W/cli-install"

# The RM API from one python3 process: N Installs posted at once and waited
# for, and the Uninstall of every instance of the type.
cat >"$W/rm-client.py" <<'PY'
import http.client, json, socket, sys, threading, time, urllib.parse
RM = "/api/resource-manager"
sock_path = sys.argv[2]

class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("x", timeout=600)
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sock_path)

def call(method, path, body=None):
    c = Unix()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, RM + path, body=None if body is None else json.dumps(body), headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None

def post_all(bodies):
    """Every request posted at once (one thread each, released together)."""
    answers = [None] * len(bodies)
    gate = threading.Barrier(len(bodies) + 1)
    def post(i):
        gate.wait()
        answers[i] = call("POST", "/lifecycle/transitions", bodies[i])
    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    start = time.perf_counter()
    gate.wait()
    for t in threads:
        t.join()
    posted = time.perf_counter()
    for status, answer in answers:
        if status != 202:
            sys.exit(f"POST /lifecycle/transitions: HTTP {status}: {answer}")
    return start, posted, [a["requestId"] for _, a in answers]

def wait_all(ids):
    """Each request polled in turn until it ends (10 ms between polls)."""
    ended = []
    for rid in ids:
        while True:
            status, body = call("GET", f"/lifecycle/transitions/{rid}/status")
            if status != 200:
                sys.exit(f"status of {rid}: HTTP {status}: {body}")
            if body["requestState"] in ("COMPLETED", "FAILED"):
                ended.append(body)
                break
            time.sleep(0.01)
    return time.perf_counter(), ended

def daemon_ms(body):
    reason = body.get("requestStateReason") or ""
    words = reason.split()
    return int(words[-2]) if reason.startswith("Transition successfully completed in") else None

mode = sys.argv[1]
if mode == "install":  # install SOCK TYPE N PREFIX
    type_name, n, prefix = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    bodies = [{"deploymentLocation": "local", "resourceType": type_name, "transitionName": "Install",
               "resourceName": f"{prefix}-{i:03d}", "properties": {"greeting": "hello"}} for i in range(n)]
    start, posted, ids = post_all(bodies)
    end, ended = wait_all(ids)
    print(json.dumps({
        "n": n, "wall_s": end - start, "post_s": posted - start,
        "completed": sum(b["requestState"] == "COMPLETED" for b in ended),
        "failed": [b.get("requestStateReason") for b in ended if b["requestState"] != "COMPLETED"],
        "daemon_ms": [daemon_ms(b) for b in ended],
    }))
elif mode == "uninstall-all":  # uninstall-all SOCK TYPE
    type_name = sys.argv[3]
    query = urllib.parse.urlencode({"instanceType": type_name})
    status, instances = call("GET", f"/topology/deployment-locations/local/instances?{query}")
    if status != 200:
        sys.exit(f"instances: HTTP {status}: {instances}")
    if not instances:
        print(json.dumps({"n": 0, "wall_s": 0.0, "completed": 0, "failed": []}))
        sys.exit(0)
    bodies = [{"resourceId": i["resourceId"], "transitionName": "Uninstall"} for i in instances]
    start, _, ids = post_all(bodies)
    end, ended = wait_all(ids)
    print(json.dumps({
        "n": len(bodies), "wall_s": end - start,
        "completed": sum(b["requestState"] == "COMPLETED" for b in ended),
        "failed": [b.get("requestStateReason") for b in ended if b["requestState"] != "COMPLETED"],
    }))
elif mode == "count":  # count SOCK TYPE
    query = urllib.parse.urlencode({"instanceType": sys.argv[3]})
    status, instances = call("GET", f"/topology/deployment-locations/local/instances?{query}")
    if status != 200:
        sys.exit(f"instances: HTTP {status}: {instances}")
    print(len(instances))
else:
    sys.exit(f"unknown mode {mode}")
PY
rm_client() { python3 "$W/rm-client.py" "$1" "$SOCK" "${@:2}"; }
uninstall_all() { # $1: what for (messages); every instance of the type, through the API
    local out
    out=$(rm_client uninstall-all "$TYPE") || die "uninstalling the instances ($1) failed"
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["completed"] == r["n"] else 1)' "$out" \
        || die "not every Uninstall ($1) COMPLETED: $out"
    [ "$(rm_client count "$TYPE")" -eq 0 ] || die "instances of $TYPE are left after uninstalling them ($1)"
    [ -z "$(docker ps -aq --filter "label=berth.instance=$INSTANCE" --filter label=berth.resource)" ] \
        || die "containers of uninstalled instances are left ($1)"
    UNINSTALL_JSON=$out
}
cli_containers() { docker ps -aq --filter "label=$BENCH_LABEL=$W"; }
remove_cli_containers() { remove_containers "$BENCH_LABEL=$W"; }

# -------------------------------------------------------------------- daemon
# The RM API on the unix socket only (no TCP listener to collide with).
BENCH_TOML=$'[resource]\nlisten = ""\n'
start_daemon
say "daemon ready: pid $DAEMON_PID, instance $INSTANCE"
say "onboarding $TYPE ($(
    [ "$BASE_BUILT" = 1 ] && echo "berth builds $BASE_IMAGE first" || echo "$BASE_IMAGE is there"
))"
onboard_start=$EPOCHREALTIME
"$BERTH" --socket "$SOCK" resource onboard "$PKG" --output json >"$W/run.log" 2>&1 \
    || die "berth resource onboard failed: $(cat "$W/run.log")"
ONBOARD_S=$(awk -v a="$onboard_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "onboarding built no image $IMAGE"
say "onboarded in $ONBOARD_S s; image $IMAGE"

# ------------------------------------------------------------------ warm-up
say "warm-up: one Install through the API, one docker CLI sequence"
"$W/berth-install" "$SOCK" "$TYPE" "$W/never" "$W/warmup.tsv" >"$W/run.log" 2>&1 || die "the berth Install failed"
WARM_ID=$(cut -f2 "$W/warmup.tsv")
WARM_STATUS=$(curl -sf --unix-socket "$SOCK" "http://x/api/resource-manager/lifecycle/transitions/$WARM_ID/status")
WARM_INSTANCE=$(json_field resourceId <<<"$WARM_STATUS")
curl -sf --unix-socket "$SOCK" "http://x/api/resource-manager/topology/instances/$WARM_INSTANCE" >"$W/instance.json" \
    || die "no instance $WARM_INSTANCE"
python3 - "$W/instance.json" <<'PY' || die "the Install did not record what the script set: $(cat "$W/instance.json")"
import json, sys
i = json.load(open(sys.argv[1]))
sys.exit(0 if i["properties"].get("done") == "yes" and i["properties"].get("greeting") == "hello" else 1)
PY
BERTH_CONTAINER=$(docker ps -q --filter "label=berth.resource=$WARM_INSTANCE")
[ -n "$BERTH_CONTAINER" ] || die "no running container for instance $WARM_INSTANCE"
NANO_CPUS=$(docker inspect --format '{{.HostConfig.NanoCpus}}' "$BERTH_CONTAINER")
CPUS=$(awk -v n="$NANO_CPUS" 'BEGIN { printf "%g", n / 1e9 }')
[ "$NANO_CPUS" -gt 0 ] || die "berth's container has no CPU limit (NanoCpus $NANO_CPUS)"
BERTH_PARAMS=$(docker exec "$BERTH_CONTAINER" cat /opt/rmparams)
"$W/cli-install" "$IMAGE" "$CPUS" "$BENCH_LABEL=$W" "$W/warmup-cli.tsv" >"$W/run.log" 2>&1 \
    || die "the docker CLI sequence failed: $(cat "$W/run.log")"
CLI_PARAMS=$(docker exec "$(cli_containers | head -n1)" cat /opt/rmparams)
[ "$BERTH_PARAMS" = "$CLI_PARAMS" ] || die "the two ways left different params files:
berth: $BERTH_PARAMS
CLI:   $CLI_PARAMS"
say "instance $WARM_INSTANCE: container ${BERTH_CONTAINER:0:12}, --cpus $CPUS; both ways left the same /opt/rmparams"

# ---------------------------------------------------------------- hyperfine
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # quoting for hyperfine -N (shell-words)
say "hyperfine: --warmup 3 --runs $RUNS -N (both clients are bash scripts)"
hyperfine -N --warmup 3 --runs "$RUNS" --style basic --export-json "$W/hyperfine.json" \
    -n "berth: POST /lifecycle/transitions Install, poll until COMPLETED" \
    "$(q "$W/berth-install") $(q "$SOCK") $(q "$TYPE") $(q "$W/never") $(q "$W/berth-runs.tsv")" \
    -n "docker CLI: run -d, exec (params), exec (script), exec (read back)" \
    "$(q "$W/cli-install") $(q "$IMAGE") $(q "$CPUS") $(q "$BENCH_LABEL=$W") $(q "$W/cli-runs.tsv")"
[ -z "${BENCH_EXPORT:-}" ] || cp "$W/hyperfine.json" "$BENCH_EXPORT"
SEQ_INSTANCES=$(rm_client count "$TYPE")
SEQ_CLI=$(cli_containers | wc -l)
say "$SEQ_INSTANCES instances through berth, $SEQ_CLI containers by the CLI; uninstalling and removing them"
uninstall_all "the sequential runs"
SEQ_UNINSTALL=$UNINSTALL_JSON
remove_cli_containers

# ------------------------------------------------------- N concurrent Installs
say "$CONCURRENT concurrent Installs through the API (posted at once, then waited for)"
rm_client install "$TYPE" "$CONCURRENT" "conc" >"$W/concurrent.json" || die "the concurrent Installs broke"
say "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%d/%d COMPLETED in %.2f s" % (r["completed"], r["n"], r["wall_s"]))' "$W/concurrent.json")"
CONC_INSTANCES=$(rm_client count "$TYPE")
CONC_CONTAINERS=$(docker ps -q --filter "label=berth.instance=$INSTANCE" --filter label=berth.resource | wc -l)
say "$CONC_INSTANCES instances, $CONC_CONTAINERS running containers; $CONCURRENT concurrent Uninstalls"
uninstall_all "the concurrent Installs"
CONC_UNINSTALL=$UNINSTALL_JSON

say "$CONCURRENT concurrent docker CLI sequences (xargs -P $CONCURRENT)"
cli_start=$EPOCHREALTIME
cli_failed=0
seq "$CONCURRENT" | xargs -P "$CONCURRENT" -I{} "$W/cli-install" "$IMAGE" "$CPUS" "$BENCH_LABEL=$W" \
    "$W/cli-concurrent.tsv" >"$W/run.log" 2>&1 9>&- || cli_failed=1
CLI_CONC_S=$(awk -v a="$cli_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
CLI_CONC_OK=$(wc -l <"$W/cli-concurrent.tsv" 2>/dev/null || echo 0)
[ "$cli_failed" = 0 ] || say "some docker CLI sequences failed ($CLI_CONC_OK/$CONCURRENT succeeded): $(tail -n 3 "$W/run.log")"
remove_cli_containers
RSS_PEAK=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DAEMON_PID/status")

# ------------------------------------------------------------------ summary
python3 - "$W/hyperfine.json" "$W/berth-runs.tsv" "$W/cli-runs.tsv" "$RUNS" "$TARGET_VS_CLI" "$W/concurrent.json" \
    "$CLI_CONC_S" "$CLI_CONC_OK" "$SEQ_UNINSTALL" "$CONC_UNINSTALL" "$CPUS" "$ONBOARD_S" "$RSS_PEAK" <<'PY'
import json, statistics, sys
(path, berth_log, cli_log, runs, target, concurrent, cli_conc_s, cli_conc_ok, seq_uninstall, conc_uninstall,
 cpus, onboard_s, rss_peak) = sys.argv[1:]
runs, target = int(runs), float(target)
berth, cli = json.load(open(path))["results"]
# The clients' own lines: the last `runs` are hyperfine's measured runs (its warm-ups come first).
b_rows = [l.split("\t") for l in open(berth_log).read().splitlines()][-runs:]
c_rows = [l.split("\t") for l in open(cli_log).read().splitlines()][-runs:]
def mean(values):
    return statistics.mean(values) if values else float("nan")
print()
print(f"one Install (hyperfine -N, {len(berth['times'])} runs each; the type's container gets --cpus {cpus})")
print(f"  {'command':<70} {'mean ms':>8} {'stddev':>7} {'median':>8} {'min':>8} {'max':>8} {'user+sys':>8}")
for r in (berth, cli):
    print(f"  {r['command']:<70} {r['mean']*1e3:8.1f} {(r['stddev'] or 0)*1e3:7.1f} {r['median']*1e3:8.1f} "
          f"{r['min']*1e3:8.1f} {r['max']*1e3:8.1f} {(r['user'] + r['system'])*1e3:8.1f}")
daemon = [int(row[5].split()[-2]) for row in b_rows if row[5].startswith("Transition successfully completed in")]
print()
print("inside the runs (mean ms, from the clients' own clocks)")
print(f"  a. POST answered (202)                         {mean([int(r[2]) for r in b_rows]):7.1f}")
print(f"     POST → COMPLETED seen                       {mean([int(r[3]) for r in b_rows]):7.1f}"
      f"   ({mean([int(r[4]) for r in b_rows]):.1f} status polls)")
print(f"     the daemon's run, its reason's \"in N msecs\" {mean(daemon):7.1f}")
print(f"  b. docker run -d                               {mean([int(r[1]) for r in c_rows]):7.1f}")
print(f"     docker exec … printf > /opt/rmparams        {mean([int(r[2]) for r in c_rows]):7.1f}")
print(f"     docker exec /opt/lifecycle/install.sh       {mean([int(r[3]) for r in c_rows]):7.1f}")
print(f"     docker exec cat /opt/rmparams               {mean([int(r[4]) for r in c_rows]):7.1f}")
print(f"     total                                       {mean([int(r[5]) for r in c_rows]):7.1f}")
c = json.load(open(concurrent))
seq_u, conc_u = json.loads(seq_uninstall), json.loads(conc_uninstall)
d = [x for x in c["daemon_ms"] if x is not None]
print()
print(f"{c['n']} concurrent Installs through the API (posted at once, then waited for)")
print(f"  all posted (every 202) after                   {c['post_s']*1e3:7.0f} ms")
print(f"  wall time until the last was seen ended        {c['wall_s']:7.2f} s   ({c['completed']}/{c['n']} COMPLETED)")
if d:
    print(f"  the daemon's run per request: min {min(d)} ms, median {statistics.median(d):.0f} ms, max {max(d)} ms")
for reason in c["failed"][:5]:
    print(f"  FAILED: {reason}")
print(f"  {c['n']} concurrent docker CLI sequences (xargs -P) {float(cli_conc_s):7.2f} s   ({cli_conc_ok}/{c['n']} succeeded)")
print(f"  {conc_u['n']} concurrent Uninstalls through the API    {conc_u['wall_s']:7.2f} s   ({conc_u['completed']}/{conc_u['n']} COMPLETED)")
print(f"  (the {seq_u['n']} instances of the sequential runs were uninstalled concurrently in {seq_u['wall_s']:.2f} s)")
ratio = berth["mean"] / cli["mean"]
conc_ratio = c["wall_s"] / float(cli_conc_s)
all_ok = c["completed"] == c["n"]
print()
print("summary")
print(f"  a. berth Install through the API     {berth['mean']*1e3:8.1f} ms ± {(berth['stddev'] or 0)*1e3:.1f}")
print(f"  b. docker CLI sequence               {cli['mean']*1e3:8.1f} ms ± {(cli['stddev'] or 0)*1e3:.1f}")
print(f"  ratio berth / docker CLI             {ratio:8.3f}")
print(f"  c. {c['n']} concurrent Installs, berth     {c['wall_s']:8.2f} s  ({c['completed']}/{c['n']} COMPLETED)")
print(f"     {c['n']} concurrent CLI sequences      {float(cli_conc_s):8.2f} s  ({cli_conc_ok}/{c['n']} succeeded)")
print(f"  ratio berth / docker CLI, concurrent {conc_ratio:8.3f}  (reference, no target)")
print(f"  onboarding (image build) {onboard_s} s; daemon peak RSS {rss_peak} MiB")
print(f"  target: berth <= {target}x the docker CLI sequence    {'PASS' if ratio <= target else 'FAIL'} ({ratio:.3f})")
print(f"  target: all {c['n']} concurrent Installs COMPLETED    {'PASS' if all_ok else 'FAIL'} ({c['completed']}/{c['n']})")
PY
printf '  machine: %s CPUs (%s), %s RAM, kernel %s\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
printf '  docker: engine %s (storage %s, runtime %s), CLI %s; curl %s; %s; %s\n' \
    "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" \
    "$(docker info --format '{{.Driver}}' 2>/dev/null)" \
    "$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null)" \
    "$(docker version --format '{{.Client.Version}}' 2>/dev/null)" \
    "$(curl --version | awk 'NR == 1 { print $2 }')" "$(hyperfine --version)" "$("$BERTH" --version)"
printf '  load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
