#!/bin/bash
# deploy/ against the real things this machine has: the systemd units'
# command lines run as systemd would run them (and systemd-analyze verify
# when it exists), the Slurm batch script under a real single-node Slurm
# (root with slurmctld, slurmd and munged installed) or else under a stand-in
# srun, and the Containerfile and Kubernetes manifests checked as text.
# Usage: test_deploy.sh PATH-TO-TFQ
#
# TFQ_DEPLOY_SLURM=shim forces the stand-in srun.  Prints "ok: ..." per
# check; the first failure ends the test with the logs.
set -u

TFQ=$(realpath "${1:?usage: test_deploy.sh PATH-TO-TFQ}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
DEPLOY="$SRC/deploy"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-deploy-XXXXXX")
chmod 755 "$DIR"
HOST=$(hostname)
PIDS=()     # processes this test started, stopped by PID in cleanup
SLURM=0     # 1 once our slurmctld answers

cleanup() {
    if [ "$SLURM" = 1 ]; then
        scancel --user="$(id -un)" 2>/dev/null
    fi
    local p i alive
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for i in $(seq 50); do
        alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$DIR"/*.log "$DIR"/slurm/*.log "$DIR"/slurm-*.out; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -25 "$f" >&2; }
    done
    exit 1
}
ok() { echo "ok: $*"; }
# q and check_once, on DIR/st: here a link to the unit's state directory.
. "$(dirname "$0")/lib_queue.sh"

# ---------------------------------------------------------------- systemd

# unit_keys UNIT: every "Section.Key" the unit sets, one a line.
unit_keys() {
    awk '/^[ \t]*[#;]/ || /^[ \t]*$/ { next }
         /^\[/ { sec = substr($0, 2, index($0, "]") - 2); next }
         { k = $0; sub(/=.*/, "", k); print sec "." k }' "$1"
}

# unit_value UNIT KEY: the values of KEY (any section), one a line.
unit_value() {
    sed -n "s/^$2=//p" "$1"
}

# unit_cmd UNIT INSTANCE [VAR=VALUE...]: sets CMD to the unit's ExecStart
# as systemd would run it: the Environment= defaults, then the overrides
# given (in place of /etc/tfq/tfq.env); ${VAR} is one word, $VAR is split;
# %H, %i and %S are the host, INSTANCE and $DIR/lib.
unit_cmd() {
    local unit="$1" inst="$2" line name word
    shift 2
    declare -A env=()
    while IFS= read -r line; do
        line="${line#Environment=}"
        line="${line#\"}"
        line="${line%\"}"
        env["${line%%=*}"]="${line#*=}"
    done < <(grep '^Environment=' "$unit")
    for line in "$@"; do env["${line%%=*}"]="${line#*=}"; done
    CMD=()
    set -f
    for word in $(unit_value "$unit" ExecStart); do
        if [[ "$word" =~ ^\$\{([A-Za-z_0-9]+)\}$ ]]; then
            name="${BASH_REMATCH[1]}"
            [ -n "${env[$name]+x}" ] || fail "$unit: \${$name} is set neither in the unit nor by the test"
            CMD+=("${env[$name]}")
        elif [[ "$word" =~ ^\$([A-Za-z_0-9]+)$ ]]; then
            name="${BASH_REMATCH[1]}"
            [ -n "${env[$name]+x}" ] || fail "$unit: \$$name is set neither in the unit nor by the test"
            # shellcheck disable=SC2206 # split as systemd splits $VAR
            CMD+=(${env[$name]})
        else
            word="${word//%H/$HOST}"
            word="${word//%i/$inst}"
            word="${word//%S/$DIR/lib}"
            CMD+=("$word")
        fi
    done
    set +f
    [ "${CMD[0]}" = "$TFQ" ] || fail "$unit: ExecStart runs ${CMD[0]}, not tfq"
}

UNITS="$DIR/units"
mkdir -p "$UNITS" "$DIR/lib"
# The units are templates (deploy/meson.build fills in the install's
# paths): here tfq is the one under test, the configuration in /etc/tfq.
for u in tfq-coordinator.service tfq-worker@.service; do
    [ -f "$DEPLOY/systemd/$u.in" ] || fail "no deploy/systemd/$u.in"
    grep -q '^ExecStart=@bindir@/tfq ' "$DEPLOY/systemd/$u.in" ||
        fail "$u.in: ExecStart is not @bindir@/tfq (where meson install puts it)"
    sed "s|@bindir@/tfq|$TFQ|g; s|@sysconfdir@/|/etc/|g" "$DEPLOY/systemd/$u.in" >"$UNITS/$u"
    grep -n '@[a-z]*@' "$UNITS/$u" && fail "$u.in: a template variable the test does not fill"
done
cp "$UNITS/tfq-worker@.service" "$UNITS/tfq-worker@1.service"
COORD_UNIT="$UNITS/tfq-coordinator.service"
WORKER_UNIT="$UNITS/tfq-worker@1.service"

if command -v systemd-analyze >/dev/null; then
    out=$(cd "$UNITS" && systemd-analyze verify ./tfq-coordinator.service ./tfq-worker@1.service 2>&1)
    rc=$?
    [ "$rc" = 0 ] || fail "systemd-analyze verify: $out"
    # Unknown keys and bad values are warnings: none may name our units.
    if echo "$out" | grep 'tfq-'; then
        fail "systemd-analyze verify warns about the units"
    fi
    ok "systemd-analyze verify: both units"
else
    echo "note: no systemd-analyze; the units are checked by the parser alone"
fi

need_keys() {
    local unit="$1" k
    shift
    for k in "$@"; do
        unit_keys "$unit" | grep -qx "$k" || fail "$(basename "$unit"): no $k"
    done
}
common_keys=(Unit.Description Unit.After Service.ExecStart Service.User
    Service.EnvironmentFile Service.Restart Service.KillSignal
    Service.TimeoutStopSec Service.NoNewPrivileges Service.ProtectSystem
    Service.ProtectHome Service.PrivateTmp Service.CapabilityBoundingSet
    Install.WantedBy)
need_keys "$COORD_UNIT" "${common_keys[@]}" Service.StateDirectory
need_keys "$WORKER_UNIT" "${common_keys[@]}" Service.SuccessExitStatus
for u in "$COORD_UNIT" "$WORKER_UNIT"; do
    b=$(basename "$u")
    [ "$(unit_value "$u" Restart)" = on-failure ] || fail "$b: Restart is not on-failure"
    [ "$(unit_value "$u" NoNewPrivileges)" = yes ] || fail "$b: NoNewPrivileges is not yes"
    case "$(unit_value "$u" ProtectSystem)" in strict | full) ;; *) fail "$b: ProtectSystem is not strict or full" ;; esac
    t=$(unit_value "$u" TimeoutStopSec)
    [ "${t%s}" -ge 60 ] 2>/dev/null || fail "$b: TimeoutStopSec $t is under a minute"
    unit_value "$u" EnvironmentFile | grep -qx -- '-\{0,1\}/etc/tfq/tfq.env' || fail "$b: EnvironmentFile is not /etc/tfq/tfq.env"
done
unit_value "$WORKER_UNIT" SuccessExitStatus | grep -qw 130 || fail "worker unit: exit 130 (stopped by SIGTERM) is not a success"
unit_value "$WORKER_UNIT" ExecStart | grep -q -- '--name %H-%i' || fail "worker unit: not named %H-%i"
unit_value "$COORD_UNIT" ExecStart | grep -q -- '--state %S/tfq' || fail "coordinator unit: state is not %S/tfq (StateDirectory=tfq)"
[ "$(unit_value "$COORD_UNIT" StateDirectory)" = tfq ] || fail "coordinator unit: StateDirectory is not tfq"
# Every variable of the worker's ExecStart has a default or is in the
# example environment file, and that file names the key variables.
ENVEX="$DEPLOY/systemd/tfq.env.in"
[ -f "$ENVEX" ] || fail "no deploy/systemd/tfq.env.in"
for v in TFQ_CONNECT TFQ_CURVE_KEY TFQ_SERVER_KEY; do
    grep -q "^$v=" "$ENVEX" || fail "tfq.env.in does not set $v"
done
ok "unit files: required keys, hardening, graceful stop, tfq.env.in"

# The coordinator from its unit's command line, plaintext on loopback: the
# one every test below uses.  --bind port * writes the port it took.
STATE="$DIR/lib/tfq"
ln -s lib/tfq "$DIR/st"
# start_unit_coord LOG WHAT: starts the command line in CMD (from unit_cmd)
# as the coordinator, logging to LOG; sets COORD and EP once it listens.
start_unit_coord() {
    "${CMD[@]}" 2>>"$1" &
    COORD=$!
    PIDS+=("$COORD")
    poll 60 test -s "$STATE/endpoint" || fail "$2 did not start within 60 s: ${CMD[*]}"
    EP=$(cat "$STATE/endpoint")
}

unit_cmd "$COORD_UNIT" 1 'TFQ_BIND=tcp://127.0.0.1:*' TFQ_COORDINATOR_OPTS=
start_unit_coord "$DIR/coord.log" "the coordinator unit's command line"
ok "coordinator from its unit's ExecStart at $EP"

# ---------------------------------------------------------------- Slurm

# The grid: eight independent sleep jobs.
{
    for i in 1 2 3 4 5 6 7 8; do
        [ "$i" = 1 ] || echo ---
        printf 'name = s%d\nkind = sleep\nsleep_ms = 300\nseed = %d\n' "$i" "$i"
    done
} >"$DIR/grid.txt"
"$TFQ" submit "$DIR/grid.txt" --as slurm --connect "$EP" >/dev/null || fail "submit"

SBATCH="$DEPLOY/slurm/tfq-workers.sbatch"
[ -f "$SBATCH" ] || fail "no deploy/slurm/tfq-workers.sbatch"
bash -n "$SBATCH" || fail "tfq-workers.sbatch: syntax"

MODE=shim
if [ "${TFQ_DEPLOY_SLURM:-}" != shim ] && [ "$(id -u)" = 0 ]; then
    MODE=real
    for c in slurmctld slurmd munged sbatch sinfo squeue scontrol scancel; do
        command -v "$c" >/dev/null || { MODE=shim; echo "note: no $c"; }
    done
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_slurm: munged, slurmctld and slurmd of a one-node cluster of this
# host, all under $DIR/slurm, on free ports; waits for the node to be idle.
# Returns 1 with the reason in SLURM_WHY when the cluster cannot come up
# on this machine (a container without what slurmd needs, say): the test
# then says so and runs the script with the stand-in srun, as the issue
# allows.  Everything it started goes in SLURM_PIDS.
SLURM_PIDS=()
start_slurm() {
    local S="$DIR/slurm" node cpus
    mkdir -p "$S/munge" "$S/state" "$S/spool"
    chmod 700 "$S/munge"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$S/munge/munge.key" ||
            { SLURM_WHY="mungekey failed"; return 1; }
    else
        dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 2>/dev/null
        chmod 600 "$S/munge/munge.key"
    fi
    munged --foreground --force --key-file="$S/munge/munge.key" \
        --socket="$S/munge/socket" --pid-file="$S/munge/pid" \
        --seed-file="$S/munge/seed" --log-file="$S/munged.log" \
        >>"$S/munged.log" 2>&1 &
    PIDS+=($!)
    SLURM_PIDS+=($!)
    poll 60 test -S "$S/munge/socket" ||
        { SLURM_WHY="munged did not start within 60 s: $(tail -2 "$S/munged.log")"; return 1; }
    node=$(hostname -s)
    cpus=$(nproc)
    [ "$cpus" -ge 2 ] || cpus=2   # the job needs two; config_overrides allows it
    touch "$S/plugstack.conf"
    cat >"$S/slurm.conf" <<EOF
ClusterName=tfqtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$S/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
PlugStackConfig=$S/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=tfq Nodes=$node Default=YES MaxTime=UNLIMITED State=UP
EOF
    export SLURM_CONF="$S/slurm.conf"
    slurmctld -D -c -f "$SLURM_CONF" >>"$S/slurmctld.log" 2>&1 &
    PIDS+=($!)
    SLURM_PIDS+=($!)
    SLURM=1
    slurmd -D -f "$SLURM_CONF" -N "$node" >>"$S/slurmd.log" 2>&1 &
    PIDS+=($!)
    SLURM_PIDS+=($!)
    node_idle() { [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; }
    poll 120 node_idle && return 0
    SLURM_WHY="the node is not idle after 120 s: $(sinfo 2>&1 | tail -1); slurmd: $(tail -2 "$S/slurmd.log")"
    return 1
}

# stop_slurm: what start_slurm started, when it could not finish.
stop_slurm() {
    for p in "${SLURM_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    SLURM=0
    unset SLURM_CONF
}

T0=$(date +%s.%N)
if [ "$MODE" = real ] && ! start_slurm; then
    echo "note: a real Slurm cannot run here ($SLURM_WHY); the batch script runs with a stand-in srun instead"
    stop_slurm
    MODE=shim
fi
if [ "$MODE" = real ]; then
    echo "Slurm mode: real ($(sinfo -V), munge, one node)"
    ok "single-node Slurm up in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    # 300 s: a worker that never exits must not hang the test.
    JOB=$(TFQ="$TFQ" timeout 300 sbatch --parsable --wait --ntasks=2 --cpus-per-task=1 \
        --time=10 --chdir="$DIR" --output="$DIR/slurm-%j.out" \
        "$SBATCH" --connect "$EP")
    rc=$?
    [ "$rc" = 0 ] || fail "sbatch --wait exited $rc (job $JOB)"
    JOB="${JOB%%;*}"
    info=$(scontrol show job "$JOB")
    echo "$info" | grep -q 'JobState=COMPLETED' || fail "job $JOB did not complete: $info"
    echo "$info" | grep -q 'ExitCode=0:0' || fail "job $JOB exit code: $info"
    queue_empty() { [ -z "$(squeue -h)" ]; }
    poll 60 queue_empty || fail "the allocation is still there after 60 s: $(squeue)"
    ok "sbatch --wait: job $JOB completed with 0 and left the queue"
else
    echo "Slurm mode: shim (srun stand-in; not root, no Slurm, or TFQ_DEPLOY_SLURM=shim)"
    mkdir -p "$DIR/shim"
    # srun OPTIONS CMD...: CMD once per task with SLURM_PROCID; the highest
    # exit status.  Records its arguments.
    cat >"$DIR/shim/srun" <<'EOF'
#!/bin/bash
printf '%s\n' "$@" >"$SHIM_LOG"
n=1
while [ $# -gt 0 ]; do
    case "$1" in
    --ntasks=*) n="${1#--ntasks=}" ;;
    -n) n="$2"; shift ;;
    -*) ;;
    *) break ;;
    esac
    shift
done
pids=()
for ((i = 0; i < n; i++)); do
    SLURM_PROCID=$i "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || { r=$?; [ "$r" -gt "$rc" ] && rc=$r; }; done
exit $rc
EOF
    chmod +x "$DIR/shim/srun"
    JOB=4242
    SHIM_LOG="$DIR/srun-args.txt" PATH="$DIR/shim:$PATH" TFQ="$TFQ" \
        SLURM_JOB_ID=$JOB SLURM_NTASKS=2 SLURM_CPUS_PER_TASK=1 \
        timeout 300 bash "$SBATCH" --connect "$EP" >"$DIR/slurm-$JOB.out" 2>&1
    rc=$?
    [ "$rc" = 0 ] || fail "the batch script exited $rc"
    grep -qx -- '--ntasks=2' "$DIR/srun-args.txt" || fail "srun not given --ntasks=2: $(cat "$DIR/srun-args.txt")"
    grep -qx -- '--cpus-per-task=1' "$DIR/srun-args.txt" || fail "srun not given --cpus-per-task"
    tr '\n' ' ' <"$DIR/srun-args.txt" | grep -q -- "--threads 1 --exit-when-idle" ||
        fail "worker not given --threads 1 --exit-when-idle: $(cat "$DIR/srun-args.txt")"
    ok "batch script under the srun stand-in exited 0"
fi
check_once
[ "$(q "select count(*) from jobs")" = 8 ] || fail "not 8 jobs"
others=$(q "select group_concat(distinct worker) from attempts where worker not in ('slurm-$JOB-0', 'slurm-$JOB-1')")
[ -z "$others" ] || fail "attempts by workers not named after job $JOB: $others"
[ "$(q "select count(distinct worker) from attempts")" = 2 ] ||
    fail "not both tasks' workers ran jobs: $(q "select worker, count(*) from attempts group by worker")"
grep -q 'the queue is drained' "$DIR"/slurm-$JOB.out || fail "the batch script did not say the queue is drained"
ok "Slurm ($MODE): 8 jobs, each succeeded once, by slurm-$JOB-0 and slurm-$JOB-1, in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

# ---------------------------------------------------------------- the worker unit

# The worker from its unit's command line (--max-jobs 1 added so that it
# ends): it takes a job and is named HOST-1.
printf 'name = unit\nkind = sleep\nsleep_ms = 100\nseed = 99\n' >"$DIR/one.txt"
"$TFQ" submit "$DIR/one.txt" --as unit --connect "$EP" >/dev/null || fail "submit"
unit_cmd "$WORKER_UNIT" 1 "TFQ_CONNECT=$EP"
timeout 300 "${CMD[@]}" --max-jobs 1 2>>"$DIR/unit-worker.log" || fail "the worker unit's command line failed: ${CMD[*]}"
[ "$(q "select a.worker from attempts a join jobs j on j.id = a.job_id where j.name = 'unit' and a.state = 'succeeded'")" = "$HOST-1" ] ||
    fail "the unit's worker is not named $HOST-1"
ok "worker from its unit's ExecStart ran a job as $HOST-1"

# The coordinator stops cleanly on SIGTERM (the unit's KillSignal).
kill -TERM "$COORD"
wait "$COORD"
rc=$?
[ "$rc" = 0 ] || fail "the coordinator exited $rc on SIGTERM"
ok "coordinator exits 0 on SIGTERM"

# probe_cmd: sets CMD to the coordinator's liveness probe of
# deploy/k8s/coordinator.yaml (PyYAML reads it), its key files in $K and its
# address $EP; returns 1 without PyYAML.
probe_cmd() {
    CMD=()
    python3 -c 'import yaml' 2>/dev/null || return 1
    mapfile -t CMD < <(python3 - "$DEPLOY/k8s/coordinator.yaml" <<'EOF'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "StatefulSet":
        c = d["spec"]["template"]["spec"]["containers"][0]
        print("\n".join(c["livenessProbe"]["exec"]["command"]))
EOF
    )
    [ "${CMD[0]:-}" = tfq ] || fail "coordinator.yaml: the liveness probe does not run tfq: ${CMD[*]}"
    CMD=("$TFQ" "${CMD[@]:1}")
    CMD=("${CMD[@]//\/etc\/tfq\/keys/$K}")
    CMD=("${CMD[@]//tcp:\/\/127.0.0.1:5555/$EP}")
}

# curve_probes: the Kubernetes probe and the image's HEALTHCHECK against
# the CURVE coordinator COORD at EP, keys in K: both pass while it serves
# and fail with a key it does not allow; the probe fails once it stopped.
curve_probes() {
    local hc="$DEPLOY/healthcheck.sh" out have_probe=0
    [ -x "$hc" ] || fail "deploy/healthcheck.sh is not executable"
    if probe_cmd; then
        have_probe=1
        out=$(timeout 30 "${CMD[@]}" 2>&1) || fail "the coordinator's Kubernetes probe failed: ${CMD[*]}: $out"
    else
        echo "note: no PyYAML; the Kubernetes probe's command is not run"
    fi
    # TFQ_CURVE_KEY as a coordinator's environment may hold it: not the probe's.
    local hc_env=(TFQ="$TFQ" TFQ_PROBE_PID="$COORD" TFQ_PROBE_CONNECT="$EP"
        TFQ_PROBE_SERVER_KEY="$K/coordinator.pub" TFQ_CURVE_KEY="$K/coordinator.key")
    out=$(env "${hc_env[@]}" TFQ_PROBE_CURVE_KEY="$K/probe.key" timeout 30 "$hc" 2>&1) ||
        fail "healthcheck.sh fails on a serving coordinator: $out"
    env "${hc_env[@]}" TFQ_PROBE_CURVE_KEY="$K/worker.key" TFQ_PROBE_PID=$$ timeout 30 "$hc" ||
        fail "healthcheck.sh fails for a process that is not a coordinator"
    "$TFQ" keygen -o "$K/stranger" >/dev/null || fail "tfq keygen -o stranger"
    env "${hc_env[@]}" TFQ_PROBE_CURVE_KEY="$K/stranger.key" timeout 30 "$hc" 2>/dev/null &&
        fail "healthcheck.sh passes with a client key the coordinator does not allow"
    kill -TERM "$COORD"
    wait "$COORD"
    if [ "$have_probe" = 1 ]; then
        timeout 30 "${CMD[@]}" >/dev/null 2>&1 && fail "the Kubernetes probe passes with the coordinator stopped"
    fi
    ok "probes: the Kubernetes probe and healthcheck.sh pass on the CURVE coordinator, fail with a stranger's key, the probe once it stopped"
}

# With CURVE (once tfq has keygen): the units' default options, keys made
# by tfq keygen in place of /etc/tfq.
if "$TFQ" keygen --help >/dev/null 2>&1; then
    K="$DIR/etc"
    mkdir -p "$K"
    for k in coordinator worker client probe; do
        "$TFQ" keygen -o "$K/$k" >/dev/null || fail "tfq keygen -o $k"
    done
    cp "$K/worker.pub" "$K/workers.pub.list"
    cat "$K/client.pub" "$K/probe.pub" >"$K/clients.pub.list"
    sed "s|/etc/tfq/|$K/|g" "$COORD_UNIT" >"$UNITS/curve-coordinator.service"
    rm -f "$STATE/endpoint"
    unit_cmd "$UNITS/curve-coordinator.service" 1 'TFQ_BIND=tcp://127.0.0.1:*'
    start_unit_coord "$DIR/coord-curve.log" "the coordinator with the unit's CURVE options"
    printf 'name = curve\nkind = sleep\nsleep_ms = 100\nseed = 98\n' >"$DIR/curve.txt"
    TFQ_CURVE_KEY="$K/client.key" TFQ_SERVER_KEY="$K/coordinator.pub" \
        timeout 120 "$TFQ" submit "$DIR/curve.txt" --as curve --connect "$EP" >/dev/null ||
        fail "submit with the client key"
    unit_cmd "$WORKER_UNIT" 2 "TFQ_CONNECT=$EP"
    TFQ_CURVE_KEY="$K/worker.key" TFQ_SERVER_KEY="$K/coordinator.pub" \
        timeout 300 "${CMD[@]}" --max-jobs 1 2>>"$DIR/unit-worker.log" ||
        fail "the worker unit's command line with CURVE keys failed"
    [ "$(q "select a.worker from attempts a join jobs j on j.id = a.job_id where j.name = 'curve' and a.state = 'succeeded'")" = "$HOST-2" ] ||
        fail "the job was not run by the CURVE worker"
    ok "CURVE: coordinator with the unit's key options, a client and a worker with keys from tfq keygen"
    curve_probes
else
    echo "note: this tfq has no keygen; the units' CURVE options are not run"
fi

# ---------------------------------------------------------------- container and Kubernetes

CF="$DEPLOY/Containerfile"
[ -f "$CF" ] || fail "no deploy/Containerfile"
BUILD=$(awk '/^FROM/ { n++ } n == 1' "$CF")
RUNTIME=$(awk '/^FROM/ { n++ } n >= 2' "$CF")
[ -n "$RUNTIME" ] || fail "Containerfile: not multi-stage"
echo "$BUILD" | grep -q '^FROM debian:12' || fail "Containerfile: the build stage is not Debian 12"
echo "$RUNTIME" | grep -q '^FROM debian:12' || fail "Containerfile: the runtime stage is not Debian 12"
# The README's build command, and the build dependencies of its apt-get line.
readme_build=$(grep -o 'meson setup build && ninja -C build' "$SRC/README.md" | head -1)
[ -n "$readme_build" ] || fail "README.md has no 'meson setup build && ninja -C build'"
echo "$BUILD" | grep -q 'meson setup build' || fail "Containerfile does not run meson setup build"
echo "$BUILD" | grep -q 'ninja -C build' || fail "Containerfile does not run ninja -C build"
echo "$BUILD" | grep -q 'meson install -C build' || fail "Containerfile does not run meson install -C build"
for p in $(grep -o 'apt-get install -y [^&]*' "$SRC/README.md" | head -1 | cut -d' ' -f4-); do
    # not build dependencies: the data, and tools the tests and tfq report's
    # PNGs use (the image serves the queue; a report is made where it is read)
    case "$p" in dataset-* | sqlite3 | librsvg2-bin) continue ;; esac
    echo "$BUILD" | grep -qw -- "$p" || fail "Containerfile build stage lacks the README's $p"
done
# Every top-level folder the build reads is copied in.
for d in $(sed -n "s/^subdir('\([^']*\)')/\1/p" "$SRC/meson.build") \
    $(grep -ho "'\.\./[a-z_]*/" "$SRC"/*/meson.build | tr -d "'./" | sort -u) schema; do
    echo "$BUILD" | grep -q "^COPY $d/ " || fail "Containerfile does not copy $d/"
done
echo "$RUNTIME" | grep -q 'dataset-fashion-mnist' || fail "Containerfile runtime lacks dataset-fashion-mnist"
echo "$RUNTIME" | grep -q 'COPY --from=build' || fail "Containerfile runtime does not take tfq from the build stage"
echo "$RUNTIME" | grep -Eq '^USER +([1-9][0-9]*|[a-z][a-z0-9_-]*)' || fail "Containerfile: no USER"
echo "$RUNTIME" | grep -Eq '^USER +(0|root)\b' && fail "Containerfile runs as root"
echo "$RUNTIME" | grep -q '^ENTRYPOINT \["tfq"\]' || fail "Containerfile: ENTRYPOINT is not tfq"
# The HEALTHCHECK runs deploy/healthcheck.sh (run above), copied in.
hc_path=$(echo "$RUNTIME" | sed -n 's|^COPY deploy/healthcheck.sh \(/[^ ]*\)$|\1|p')
[ -n "$hc_path" ] || fail "Containerfile runtime does not copy deploy/healthcheck.sh"
echo "$RUNTIME" | grep -A1 '^HEALTHCHECK ' | grep -q "CMD \[\"$hc_path\"\]" ||
    fail "Containerfile: no HEALTHCHECK running $hc_path"
echo "$RUNTIME" | grep '^HEALTHCHECK ' | grep -q -- '--timeout=' || fail "Containerfile: HEALTHCHECK without --timeout"
for p in .git build/; do
    grep -qxF "$p" "$SRC/.dockerignore" 2>/dev/null || fail ".dockerignore does not leave out $p"
done
# The runtime libraries: every library tfq links, by Debian package, when
# dpkg can say.
if command -v dpkg >/dev/null; then
    for lib in $(ldd "$TFQ" | awk '$3 ~ /^\// { print $3 }'); do
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
        case "$pkg" in
        libzmq5 | libsqlite3-0 | libuv1 | libmsgpackc2 | zlib1g | libyaml-0-2)
            echo "$RUNTIME" | grep -qw "$pkg" || fail "Containerfile runtime lacks $pkg" ;;
        libopenblas0*)
            echo "$RUNTIME" | grep -qw 'libopenblas0' || fail "Containerfile runtime lacks libopenblas0" ;;
        esac
    done
fi
ok "Containerfile: two Debian 12 stages, the README's build, runtime libraries, non-root, ENTRYPOINT tfq, HEALTHCHECK; .dockerignore"

K8S="$DEPLOY/k8s"
ls "$K8S"/*.yaml >/dev/null 2>&1 || fail "no deploy/k8s/*.yaml"
if python3 -c 'import yaml' 2>/dev/null; then
    python3 - "$K8S" <<'EOF' || fail "Kubernetes manifests"
import glob, sys, yaml

docs = []
for f in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    try:
        docs += [(f, d) for d in yaml.safe_load_all(open(f)) if d]
    except yaml.YAMLError as e:
        sys.exit(f"{f}: {e}")
by_kind = {}
for f, d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

def one(kind):
    if len(by_kind.get(kind, [])) < 1:
        sys.exit(f"no {kind}")
    return by_kind[kind]

def pod_checks(what, spec):
    pod = spec["template"]["spec"]
    if pod.get("terminationGracePeriodSeconds", 30) < 60:
        sys.exit(f"{what}: terminationGracePeriodSeconds under a minute")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        sys.exit(f"{what}: not runAsNonRoot")
    for c in pod["containers"]:
        if "requests" not in c.get("resources", {}) or "limits" not in c["resources"]:
            sys.exit(f"{what}: container {c['name']} without resource requests and limits")
    # Every key file named in args or env is an item of a mounted Secret.
    secrets = {s["metadata"]["name"]: set(s.get("stringData", s.get("data", {})))
               for s in by_kind.get("Secret", [])}
    mounts = {}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    c = pod["containers"][0]
    for m in c.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "secret" in v:
            mounts[m["mountPath"]] = secrets.get(v["secret"]["secretName"])
    words = list(c.get("args", [])) + [e.get("value") for e in c.get("env", [])]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        words += c.get(probe, {}).get("exec", {}).get("command", [])
    cms = {m["metadata"]["name"]: m for m in by_kind.get("ConfigMap", [])}
    for ref in c.get("envFrom", []):
        name = ref.get("configMapRef", {}).get("name")
        if name is not None:
            if name not in cms:
                sys.exit(f"{what}: no ConfigMap {name}")
            words += list(cms[name].get("data", {}).values())
    for w in words:
        for path, items in mounts.items():
            if isinstance(w, str) and w.startswith(path + "/"):
                if items is None:
                    sys.exit(f"{what}: {path} mounts a Secret not in secret.yaml")
                if w[len(path) + 1:] not in items:
                    sys.exit(f"{what}: {w} is not an item of its Secret")
    return c

svc = [s for s in one("Service") if s["spec"].get("clusterIP") == "None"]
if not svc:
    sys.exit("no headless Service")
sts = one("StatefulSet")[0]
if sts["spec"].get("replicas", 1) != 1:
    sys.exit("the coordinator StatefulSet has more than one replica")
if sts["spec"]["serviceName"] != svc[0]["metadata"]["name"]:
    sys.exit("StatefulSet serviceName is not the headless Service")
if not sts["spec"].get("volumeClaimTemplates"):
    sys.exit("StatefulSet without volumeClaimTemplates")
c = pod_checks("StatefulSet", sts["spec"])
args = c["args"]
if args[0] != "coordinator" or "--curve-key" not in args:
    sys.exit("the StatefulSet does not run a CURVE coordinator")
# Its probes ask it for its counts on its own port, with client keys, and
# wait longer than tfq status does (10 s).
port = args[args.index("--bind") + 1].rsplit(":", 1)[1]
for probe in ("livenessProbe", "readinessProbe"):
    p = c.get(probe)
    if p is None:
        sys.exit(f"the coordinator has no {probe}")
    cmd = p.get("exec", {}).get("command", [])
    if cmd[:2] != ["tfq", "status"] or \
            cmd[cmd.index("--connect") + 1] != f"tcp://127.0.0.1:{port}":
        sys.exit(f"coordinator {probe}: not tfq status --connect tcp://127.0.0.1:{port}: {cmd}")
    if "--curve-key" not in cmd or "--server-key" not in cmd:
        sys.exit(f"coordinator {probe}: no client keys; the coordinator takes CURVE peers only")
    if p.get("timeoutSeconds", 1) <= 10 or p.get("periodSeconds", 10) < 10:
        sys.exit(f"coordinator {probe}: timeoutSeconds {p.get('timeoutSeconds', 1)} "
                 f"not over tfq status's 10 s, or a period under 10 s")
state = args[args.index("--state") + 1]
claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
if not any(m["name"] == claim and m["mountPath"] == state for m in c["volumeMounts"]):
    sys.exit("--state is not the persistent volume")
dep = one("Deployment")[0]
if dep["spec"].get("replicas", 0) < 1:
    sys.exit("the workers Deployment has no replicas")
c = pod_checks("Deployment", dep["spec"])
if c["args"][0] != "worker":
    sys.exit("the Deployment does not run workers")
one("Secret")
print(f"  {len(docs)} documents: " + ", ".join(sorted(by_kind)))
EOF
    ok "Kubernetes manifests parse (PyYAML) and hold together"
else
    echo "note: no PyYAML; the manifests are checked with grep"
    all=$(cat "$K8S"/*.yaml)
    for k in StatefulSet Deployment Service Secret; do
        echo "$all" | grep -q "^kind: $k\$" || fail "no kind: $k in deploy/k8s"
    done
    for f in 'clusterIP: None' volumeClaimTemplates 'replicas:' \
        terminationGracePeriodSeconds 'runAsNonRoot: true' 'requests:' \
        'limits:' '--curve-key' 'secretName:'; do
        echo "$all" | grep -q -- "$f" || fail "no '$f' in deploy/k8s"
    done
    ok "Kubernetes manifests hold the required kinds and fields (grep)"
fi
echo "all deploy checks passed (Slurm mode: $MODE)"
