#!/bin/bash
# The real tfq binary: exit statuses, error messages, JSON output,
# checkpoints, --resume, and SIGTERM.  Usage: test_cli.sh PATH-TO-TFQ
#
# Prints "ok: ..." or "FAIL: ..." per check and exits 1 if any failed, 77
# (skipped) when the Fashion-MNIST files it trains on are not installed.
set -u

TFQ=${1:?usage: test_cli.sh PATH-TO-TFQ}
DATA=/usr/share/datasets/fashion-mnist
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfq-cli-XXXXXX")
BG=

cleanup() {
    if [ -n "$BG" ]; then
        kill -KILL "$BG" 2>/dev/null
        wait "$BG" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

. "$(dirname "$0")/lib_check.sh"

# wait_for FILE PATTERN SECONDS: until PATTERN appears in FILE; 1 when it
# has not after SECONDS of wall time.
wait_for() {
    local end=$((SECONDS + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# json_check FILE PYTHON-EXPR [FILE0]: the expression over the parsed object
# `j` (and `j0`, parsed from FILE0) is true.
json_check() {
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
j0 = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else None
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$@"
}

# ---- without data -----------------------------------------------------------

expect "tfq --help" 0 -- --help
grep -q "train" "$TMP/out" || fail "tfq --help does not list train"
expect "tfq train --help" 0 -- train --help
grep -q -- "--resume" "$TMP/out" || fail "tfq train --help lacks --resume"
expect "no command" 2 -- 
expect "unknown command" 2 "frobnicate" -- frobnicate
expect "--epochs 0" 2 "--epochs" -- train --epochs 0
expect "--lr x" 2 "--lr" -- train --lr x
expect "stray argument" 2 "extra" -- train extra
# tfq train's settings are the table's (common/settings.c), as a job spec's
# and a grid's (test_gridspec settings_agree): lr 10 is taken (and the run
# goes on to fail on the data), 10.5 is not; --limit-train 0 means all, as
# limit_train = 0 does in a job spec (it was refused: a bug).
expect "--lr 10" 1 "/nonexistent" -- train --lr 10 --data /nonexistent
expect "--lr 10.5" 2 "tfq train: --lr: bad value '10.5' (expected a number from 1e-09 to 10)" -- train --lr 10.5
expect "--limit-train 0" 1 "/nonexistent" -- train --limit-train 0 --data /nonexistent
expect "--limit-test -1" 2 "expected an integer from 0 to" -- train --limit-test -1
expect "--weight-decay in --help" 0 -- train --help
grep -q -- "--weight-decay F    L2 weight decay (0.0005)" "$TMP/out" ||
    fail "tfq train --help lacks the table's line for --weight-decay"
expect "--data missing" 1 "/nonexistent" -- train --data /nonexistent
expect "--net unknown kind" 2 "frob" -- train --net 'conv 16 5; frob'
expect "--net not ending in fc" 2 "--net" -- train --net 'conv 16 5; relu'

# Kernel sets: TFQ_KERNELS names one or is refused before anything runs; a
# set the CPU lacks is refused, not run into SIGILL.
export TFQ_KERNELS=sse9
expect "TFQ_KERNELS unknown" 2 "unknown kernel set 'sse9'" -- bench --steps 1 --repeats 1
expect "TFQ_KERNELS unknown, worker" 2 "TFQ_KERNELS=sse9" -- worker --connect tcp://127.0.0.1:1
if ! grep -qw avx512f /proc/cpuinfo; then
    export TFQ_KERNELS=avx512
    expect "TFQ_KERNELS=avx512 without AVX-512" 2 "lacks" -- bench --steps 1 --repeats 1
fi
export TFQ_KERNELS=generic
if expect "TFQ_KERNELS=generic" 0 -- bench --steps 1 --repeats 1 --json; then
    json_check "$TMP/out" 'j["kernels"] == "generic"' &&
        ok "bench --json names the generic set" ||
        fail "bench --json kernels: $(cat "$TMP/out")"
fi
unset TFQ_KERNELS
export TFQ_CONV_ALGO=fastest
expect "TFQ_CONV_ALGO unknown" 2 "TFQ_CONV_ALGO=fastest: expected auto, direct or gemm" -- bench --steps 1 --repeats 1
export TFQ_CONV_ALGO=gemm
if expect "TFQ_CONV_ALGO=gemm" 0 -- bench --steps 1 --repeats 1; then
    grep -q 'layer 2 conv 16x14x14 -> 32 k5 s1: forward im2col+sgemm, input grad im2col+sgemm, weight grad im2col+sgemm' "$TMP/out" &&
        ok "TFQ_CONV_ALGO=gemm puts every pass on im2col + sgemm" ||
        fail "TFQ_CONV_ALGO=gemm: $(sed -n 3p "$TMP/out")"
fi
unset TFQ_CONV_ALGO
if expect "bench names its kernels" 0 -- bench --steps 1 --repeats 1; then
    grep -Eq '^kernels: (generic|avx2|avx512), 1 thread' "$TMP/out" &&
        grep -q 'layer 2 conv 16x14x14 -> 32 k5 s1: forward ' "$TMP/out" &&
        ok "bench prints the kernel set and each layer's algorithms" ||
        fail "bench output lacks its kernels: $(head -3 "$TMP/out")"
fi

# ---- files made to stall the parser ------------------------------------------

# A grid file nested 120,000 and 524,288 deep (240 KB, 1 MiB): refused at
# once, naming the line and the limit.  Before the parse was bounded the
# first took tfq submit over 60 s, the second would have taken about 25
# minutes: the 120 s bound only catches that, it is no benchmark.
for depth in 120000 524280; do
    python3 -c 'import sys; d = int(sys.argv[1]); sys.stdout.write("splits: " + "[" * d + "]" * d + "\n")' \
        "$depth" >"$TMP/deep.yaml"
    start=$SECONDS
    timeout 120 "$TFQ" submit "$TMP/deep.yaml" --dry-run >"$TMP/out" 2>"$TMP/err"
    got=$?
    if [ "$got" -eq 1 ] && grep -q "deep.yaml: line 1 column 40: lists and mappings nested deeper than 32 levels" "$TMP/err"; then
        ok "a grid file nested $depth deep is refused ($((SECONDS - start)) s)"
    else
        fail "a grid file nested $depth deep: exit status $got: $(cat "$TMP/err")"
    fi
done
# A NUL byte does not end the file silently: its offset is named.
printf 'splits: {random: [0]}\nlayers: 1\n\0layers: 2\n' >"$TMP/nul.yaml"
expect "a NUL byte in a grid file" 1 "nul.yaml: line 3 (byte offset 32): a NUL byte" -- submit "$TMP/nul.yaml" --dry-run
printf 'name = a\nkind = sleep\n\0---\nname = b\n' >"$TMP/nul.txt"
expect "a NUL byte in a job file" 1 "nul.txt: line 3 (byte offset 22): a NUL byte" -- submit "$TMP/nul.txt" --dry-run

# ---- a coordinator: its address, and checkpoints into special files ---------

# start_coord BIND: a coordinator on BIND with its state in $TMP/q, and its
# log in $TMP/coord.log; sets EP.
start_coord() {
    rm -rf "$TMP/q"
    "$TFQ" coordinator --state "$TMP/q" --bind "$1" 2>"$TMP/coord.log" &
    BG=$!
    wait_for "$TMP/q/endpoint" "tcp://" 60 || {
        fail "the coordinator on $1 wrote no endpoint within 60 s: $(cat "$TMP/coord.log")"
        return 1
    }
    EP=$(cat "$TMP/q/endpoint")
}
stop_coord() {
    kill -TERM "$BG"
    wait "$BG" || fail "the coordinator exited $? on SIGTERM"
    BG=
}

# Without CURVE off loopback, anyone who reaches the port may submit and
# take leases: the coordinator says so when it starts (not on loopback).
if start_coord 'tcp://0.0.0.0:*'; then
    grep -q "warn  listening on tcp://0.0.0.0:[0-9]* without CURVE: anyone who can reach this port can submit" "$TMP/coord.log" &&
        ok "a coordinator on 0.0.0.0 without CURVE warns" ||
        fail "no warning for 0.0.0.0 without CURVE: $(cat "$TMP/coord.log")"
    stop_coord
fi

# tfq checkpoint get writes a file beside its target and renames it into
# place; into a device or a pipe it writes directly (a rename would put a
# regular file in the place of /dev/full, as root), and a write error is
# named as such.
if start_coord 'tcp://127.0.0.1:*'; then
    grep -q "without CURVE" "$TMP/coord.log" && fail "a coordinator on loopback warned: $(cat "$TMP/coord.log")"
    printf 'name = s\nkind = sleep\nsleep_ms = 10\n' >"$TMP/s.txt"
    expect "submit a sleep job" 0 -- submit "$TMP/s.txt" --connect "$EP"
    expect "a worker runs it" 0 -- worker --connect "$EP" --name w --exit-when-idle
    expect "checkpoint get into a file" 0 -- checkpoint get 1 -o "$TMP/s.ckpt" --connect "$EP"
    grep -q "tfq sleep checkpoint 1" "$TMP/s.ckpt" || fail "checkpoint content: $(cat "$TMP/s.ckpt")"
    expect "checkpoint get into /dev/null" 0 -- checkpoint get 1 -o /dev/null --connect "$EP"
    [ -c /dev/null ] || fail "/dev/null is no longer a character device"
    if [ -c /dev/full ]; then
        expect "checkpoint get into /dev/full" 1 "tfq checkpoint: /dev/full: No space left on device" -- \
            checkpoint get 1 -o /dev/full --connect "$EP"
        grep -q "hash" "$TMP/err" && fail "a write error reported as a hash: $(cat "$TMP/err")"
        [ -c /dev/full ] || fail "/dev/full is no longer a character device"
        [ -e /dev/full.part ] && fail "/dev/full.part was left"
    fi
    mkfifo "$TMP/pipe"
    cat "$TMP/pipe" >"$TMP/piped" &
    CAT=$!
    expect "checkpoint get into a pipe" 0 -- checkpoint get 1 -o "$TMP/pipe" --connect "$EP"
    wait "$CAT"
    cmp -s "$TMP/piped" "$TMP/s.ckpt" || fail "the pipe carried another checkpoint"
    [ -p "$TMP/pipe" ] || fail "the pipe was replaced"
    stop_coord
fi

if [ ! -d "$DATA" ]; then
    echo "note: $DATA not found, skipping the training checks"
    [ "$failures" -eq 0 ] && exit 77
    exit 1
fi

# ---- a short run, its checkpoint, and resuming it ---------------------------

SHORT=(--limit-train 2000 --limit-test 500)
if expect "short run" 0 -- train "${SHORT[@]}" --epochs 1 --json --quiet \
        --save "$TMP/c.ckpt"; then
    if json_check "$TMP/out" \
        'j["epochs"] == 1 and 0 < j["final_acc"] <= 1 and len(j["test_acc"]) == 1'
    then
        ok "short run JSON"
    else
        fail "short run JSON: $(cat "$TMP/out")"
    fi
    [ -s "$TMP/c.ckpt" ] && ok "checkpoint written" ||
        fail "no checkpoint at $TMP/c.ckpt"
    [ "$(ls "$TMP" | grep -c 'c\.ckpt\.tmp')" -eq 0 ] ||
        fail "temporary checkpoint files left: $(ls "$TMP")"
    [ -s "$TMP/err" ] && fail "--quiet printed: $(cat "$TMP/err")"
    cp "$TMP/out" "$TMP/first.json"
fi

if expect "resume to 2 epochs" 0 -- train "${SHORT[@]}" --epochs 2 --json \
        --quiet --resume "$TMP/c.ckpt"; then
    # The first epoch comes from the checkpoint, unchanged.
    if json_check "$TMP/out" 'j["epochs"] == 2 and len(j["test_acc"]) == 2
            and j["test_acc"][0] == j0["test_acc"][0]
            and j["data_fingerprint"] == j0["data_fingerprint"]' \
            "$TMP/first.json"
    then
        ok "resumed JSON"
    else
        fail "resumed JSON: $(cat "$TMP/out")"
    fi
fi

expect "resume with another seed" 1 "seed" -- train "${SHORT[@]}" \
    --epochs 2 --seed 2 --quiet --resume "$TMP/c.ckpt"
expect "resume a missing file" 1 "$TMP/none.ckpt" -- train "${SHORT[@]}" \
    --epochs 2 --quiet --resume "$TMP/none.ckpt"

cp "$TMP/c.ckpt" "$TMP/bad.ckpt"
size=$(stat -c %s "$TMP/bad.ckpt")
printf '\x5a' | dd of="$TMP/bad.ckpt" bs=1 seek=$((size / 2)) conv=notrunc \
    status=none
cmp -s "$TMP/c.ckpt" "$TMP/bad.ckpt" && fail "corrupting the copy changed nothing"
expect "corrupt checkpoint" 1 "checksum" -- train "${SHORT[@]}" --epochs 2 \
    --quiet --resume "$TMP/bad.ckpt"

# ---- SIGTERM ----------------------------------------------------------------

LONG=(--limit-train 20000 --limit-test 500 --epochs 5 --save "$TMP/s.ckpt")

# term_run NAME ARGS...: starts tfq ARGS, sends SIGTERM once training has
# started, and expects status 130 and a checkpoint.
term_run() {
    local name=$1
    shift
    rm -f "$TMP/s.ckpt"
    "$TFQ" "$@" >"$TMP/out" 2>"$TMP/err" &
    BG=$!
    # The handlers are installed before the data is loaded, and the
    # "training ..." line comes once it is.  One second into the first of
    # five epochs of 20000 images: a trainer would need 100000 images/s to
    # finish before the signal (this one does a few thousand).
    if ! wait_for "$TMP/err" "^training " 300; then
        fail "$name: training did not start within 300 s:"
        sed 's/^/    /' "$TMP/err"
        return 1
    fi
    sleep 1
    kill -TERM "$BG"
    wait "$BG"
    local got=$?
    BG=
    if [ "$got" -ne 130 ]; then
        fail "$name: exit status $got after SIGTERM, expected 130; stderr:"
        sed 's/^/    /' "$TMP/err"
        return 1
    fi
    if ! grep -q "checkpoint in $TMP/s.ckpt" "$TMP/err" || [ ! -s "$TMP/s.ckpt" ]; then
        fail "$name: no checkpoint after SIGTERM; stderr:"
        sed 's/^/    /' "$TMP/err"
        return 1
    fi
    ok "$name"
}

if term_run "SIGTERM" train "${LONG[@]}"; then
    cp "$TMP/s.ckpt" "$TMP/s0.ckpt"
    # Resuming it is accepted: training starts (and is stopped again).
    if term_run "SIGTERM after --resume" train "${LONG[@]}" \
            --resume "$TMP/s0.ckpt"; then
        grep -q "from epoch" "$TMP/err" || fail "resume: no start line"
    fi
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
