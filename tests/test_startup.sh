#!/bin/bash
# What the coordinator finds at start-up: a store that lost commits (its
# write-ahead log removed or cut short, the database emptied), a corrupt
# database, a second coordinator on the same state directory, and the
# modes of what it creates.  The real tfq coordinator and worker as
# processes, the files damaged as a crash, a disk or an operator would.
# Usage: test_startup.sh TFQ CASE
set -u
TFQ=$(realpath "$1")
CASE="$2"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-startup-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness "$CASE"
ST="$DIR/st"
JOBS=200

# start_coord [ARGS...]: starts the coordinator on a free port and waits
# for its endpoint; sets EP and COORD.
start_coord() {
    rm -f "$ST/endpoint"
    "$TFQ" coordinator --state "$ST" --bind 'tcp://127.0.0.1:*' "$@" \
        2>>"$DIR/coord.log" &
    COORD=$!
    PIDS+=("$COORD")
    poll 60 started || fail "coordinator did not start within 60 s"
    [ -s "$ST/endpoint" ] || fail "the coordinator exited: $(tail -3 "$DIR/coord.log")"
    EP=$(cat "$ST/endpoint")
}
started() { [ -s "$ST/endpoint" ] || gone "$COORD"; }

# start_worker NAME [ARGS...]: sets WPID.
start_worker() {
    local name="$1"
    shift
    "$TFQ" worker --connect "$EP" --name "$name" "$@" 2>>"$DIR/$name.log" &
    WPID=$!
    PIDS+=("$WPID")
}

# sums: the checksums of the store's files (those there are).
sums() {
    local f
    for f in tfq.db tfq.db-wal tfq.seq; do
        [ -s "$ST/$f" ] && (cd "$ST" && md5sum "$f")
    done
}

# refused WHAT PATTERN [ARGS...]: a coordinator started on the state
# directory exits non-zero within 60 s with PATTERN (grep -E) in what it
# printed, and has not touched the endpoint file nor, unless another
# coordinator is using them (BUSY=1), the store's files.
BUSY=0
refused() {
    local what="$1" pattern="$2" before files
    shift 2
    before=$(cat "$ST/endpoint" 2>/dev/null)
    files=$(sums)
    "$TFQ" coordinator --state "$ST" --bind 'tcp://127.0.0.1:*' "$@" \
        >"$DIR/refused.out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    poll 60 gone "$pid" ||
        fail "the coordinator on $what still serves after 60 s, having said: $(cat "$DIR/refused.out")"
    wait "$pid"
    local rc=$?
    [ "$rc" = 1 ] || fail "the coordinator on $what exited $rc, not 1 (an error): $(cat "$DIR/refused.out")"
    grep -Eq "$pattern" "$DIR/refused.out" ||
        fail "the coordinator on $what did not say /$pattern/: $(cat "$DIR/refused.out")"
    [ "$(cat "$ST/endpoint" 2>/dev/null)" = "$before" ] || fail "the coordinator on $what wrote an endpoint"
    [ "$BUSY" = 1 ] || [ "$(sums)" = "$files" ] ||
        fail "the coordinator on $what changed the store's files: $files -> $(sums)"
    echo "# $what: $(tail -1 "$DIR/refused.out")"
}

# kill_coord: kill -9 the coordinator and reap it; its WAL stays behind.
kill_coord() {
    kill -9 "$COORD"
    wait "$COORD" 2>/dev/null
}

# snap SQL: the answer of the store as a restarted coordinator would find
# it (database and WAL), read from copies: opening the real files would
# checkpoint the WAL into the database and remove it.
snap() {
    rm -rf "$DIR/snap"
    mkdir "$DIR/snap"
    cp "$ST/tfq.db" "$DIR/snap/tfq.db"
    [ -e "$ST/tfq.db-wal" ] && cp "$ST/tfq.db-wal" "$DIR/snap/tfq.db-wal"
    sqlite3 "$DIR/snap/tfq.db" "$1"
}
# alone SQL: the same of the database file alone, without its WAL.
alone() {
    rm -rf "$DIR/snap"
    mkdir "$DIR/snap"
    cp "$ST/tfq.db" "$DIR/snap/tfq.db"
    sqlite3 "$DIR/snap/tfq.db" "$1" 2>&1
}
COUNTS="select count(*), sum(state = 'succeeded') from jobs"

# status_json: the running coordinator's `tfq status --json`.
status_json() { "$TFQ" status --connect "$EP" --json; }

# workload: JOBS sleep jobs submitted, some of them run to completion by a
# worker, then the coordinator is killed with kill -9 right after one more
# commit, so that the WAL holds commits the database does not.  Sets FULL
# (the counts the store must come back with).
workload() {
    start_coord
    for i in $(seq 1 "$JOBS"); do
        printf -- '---\nname = s%d\nkind = sleep\nsleep_ms = 0\n' "$i"
    done >"$DIR/jobs.txt"
    "$TFQ" submit "$DIR/jobs.txt" --as g --connect "$EP" >/dev/null || fail "submit"
    start_worker w --max-jobs 80
    wait_exit 120 "$WPID" "the worker" || fail "the worker exited $?"
    local extra=0
    for try in 1 2 3 4 5; do
        # One more commit; in the rare case that it was the one that
        # checkpointed the WAL into the database, another.
        extra=$((extra + 1))
        printf 'name = extra\nkind = sleep\nsleep_ms = 0\nseed = %d\n' "$extra" >"$DIR/extra.txt"
        "$TFQ" submit "$DIR/extra.txt" --as x$extra --connect "$EP" >/dev/null || fail "submit extra"
        kill_coord
        FULL=$(snap "$COUNTS")
        [ "$(alone "$COUNTS")" != "$FULL" ] && break
        [ "$try" = 5 ] && fail "the WAL held nothing the database lacks after 5 tries"
        start_coord
    done
    [ "$FULL" = "$((JOBS + extra))|80" ] || fail "the store holds $FULL (jobs|succeeded), not $((JOBS + extra))|80"
}

# serves_full: the running coordinator answers status with the counts of
# FULL (jobs and succeeded).
serves_full() {
    local total=${FULL%|*} done=${FULL#*|} js
    js=$(status_json) || fail "status: no answer"
    echo "$js" | grep -q "\"total\": $total" || fail "status after restart: not $total jobs: $js"
    echo "$js" | grep -q "\"done\": $done" || fail "status after restart: not $done done: $js"
}

case "$CASE" in
wal_removed)
    workload
    rm -f "$ST/tfq.db-wal" "$ST/tfq.db-shm"
    refused "a store without its WAL" "commit .* but .*tfq\.seq.*--accept-rollback"
    # Told to, it serves what is left and warns; the next start is clean.
    start_coord --accept-rollback
    grep -q "warn .*--accept-rollback: serving" "$DIR/coord.log" || fail "no warning about the rollback"
    echo "# $(grep -- "--accept-rollback: serving" "$DIR/coord.log" | tail -1)"
    status_json >/dev/null || fail "status after --accept-rollback"
    kill -TERM "$COORD"
    wait_exit 60 "$COORD" "the coordinator after SIGTERM" || fail "the coordinator exited $? after SIGTERM"
    start_coord
    status_json >/dev/null || fail "status after a restart"
    ;;
db_truncated)
    workload
    : >"$ST/tfq.db"
    rm -f "$ST/tfq.db-wal" "$ST/tfq.db-shm"
    refused "an emptied store" "empty.*tfq\.seq.*--accept-rollback"
    [ ! -s "$ST/tfq.db" ] || fail "the refused start wrote into the emptied store"
    # Told to, it starts afresh.
    start_coord --accept-rollback
    status_json | grep -q '"total": 0' || fail "the accepted empty store is not empty: $(status_json)"
    ;;
wal_corrupt)
    # Bytes of a frame in the middle of the WAL's valid frames changed: its
    # checksum fails and SQLite drops it and every frame after it.
    workload
    wal="$ST/tfq.db-wal"
    page=$(od -An -tu1 -j8 -N4 "$wal" | awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')
    frame=$((24 + page))
    # The current frames are those with the header's salts.
    valid=$(od -An -v -tx1 -j32 -w"$frame" "$wal" | awk -v salt="$(od -An -tx1 -j16 -N8 "$wal" | tr -d ' \n')" '
        { s = $9 $10 $11 $12 $13 $14 $15 $16; if (s != salt) exit; n++ } END { print n + 0 }')
    [ "$valid" -gt 1 ] || fail "the WAL has $valid valid frames"
    victim=$((valid / 2))
    printf 'garbage!' | dd of="$wal" bs=1 seek=$((32 + victim * frame + 24 + 1000)) conv=notrunc status=none
    echo "# corrupted frame $victim of $valid"
    after=$(snap "$COUNTS")
    if [ "$after" = "$FULL" ]; then
        start_coord
        serves_full
    else
        echo "# SQLite reads $after (jobs|succeeded) of $FULL from it"
        refused "a store whose WAL lost frames" "commit .* but .*tfq\.seq.*--accept-rollback"
    fi
    ;;
db_corrupt)
    # A page in the middle of the database (a leaf of the jobs table) is
    # overwritten; the WAL was checkpointed into the database first.
    workload
    sqlite3 "$ST/tfq.db" 'pragma wal_checkpoint(TRUNCATE)' >/dev/null || fail "checkpoint"
    page=$(sqlite3 "$ST/tfq.db" 'pragma page_size')
    pages=$(sqlite3 "$ST/tfq.db" "select pageno from dbstat where name = 'jobs' and pagetype = 'leaf' order by pageno")
    n=$(echo "$pages" | wc -l)
    victim=$(echo "$pages" | sed -n "$((n / 2 + 1))p")
    [ -n "$victim" ] || fail "no leaf page of jobs"
    head -c "$page" /dev/zero | tr '\0' '\245' |
        dd of="$ST/tfq.db" bs="$page" seek=$((victim - 1)) conv=notrunc status=none
    echo "# overwrote page $victim (a leaf of jobs, $n leaves)"
    refused "a corrupt store" "quick_check.*(page|Page|corrupt|btree)"
    ;;
second_coordinator)
    start_coord
    FIRST=$COORD
    BUSY=1
    refused "a state directory in use" "$ST.*in use.*pid $FIRST"
    kill -0 "$FIRST" 2>/dev/null || fail "the first coordinator died"
    status_json >/dev/null || fail "the first coordinator no longer answers"
    # Once it has gone, the directory is free again.
    kill -TERM "$FIRST"
    wait_exit 60 "$FIRST" "the first coordinator after SIGTERM" || fail "the first coordinator exited $?"
    start_coord
    status_json >/dev/null || fail "status from the second coordinator"
    ;;
modes)
    # A fresh state directory, and one an older tfq left open to all.
    start_coord
    printf 'name = c\nkind = sleep\nsleep_ms = 10\nckpt_every = 1\n' >"$DIR/c.txt"
    "$TFQ" submit "$DIR/c.txt" --connect "$EP" >/dev/null || fail "submit"
    start_worker w --max-jobs 1
    wait_exit 120 "$WPID" "the worker" || fail "the worker exited $?"
    mode() { stat -c %a "$1"; }
    for f in "$ST" "$ST/ckpt"; do
        [ "$(mode "$f")" = 700 ] || fail "$f has mode $(mode "$f"), not 700"
    done
    ls "$ST/ckpt" | grep -q . || fail "no checkpoint was stored"
    for f in "$ST"/tfq.db "$ST"/tfq.db-wal "$ST"/tfq.db-shm "$ST"/tfq.seq \
        "$ST"/tfq.lock "$ST"/endpoint "$ST"/ckpt/*; do
        [ "$(mode "$f")" = 600 ] || fail "$f has mode $(mode "$f"), not 600"
    done
    kill -TERM "$COORD"
    wait_exit 60 "$COORD" "the coordinator after SIGTERM" || fail "the coordinator exited $?"
    chmod 755 "$ST" "$ST/ckpt"
    chmod 644 "$ST/tfq.db"
    start_coord
    for f in "$ST" "$ST/ckpt"; do
        [ "$(mode "$f")" = 700 ] || fail "$f left at mode $(mode "$f"), not 700"
    done
    [ "$(mode "$ST/tfq.db")" = 600 ] || fail "tfq.db left at mode $(mode "$ST/tfq.db"), not 600"
    ;;
seq_lost)
    # A mirror that is lost is written anew from the store, which is
    # served whole; so is one a store made before the mirror starts.
    workload
    rm -f "$ST/tfq.seq"
    start_coord
    serves_full
    seq=$(q "select value from meta where key = 'commit_seq'")
    [ "$(cat "$ST/tfq.seq" 2>/dev/null)" = "$seq" ] ||
        fail "tfq.seq holds '$(cat "$ST/tfq.seq" 2>/dev/null)', not the store's commit $seq"
    kill -TERM "$COORD"
    wait_exit 60 "$COORD" "the coordinator after SIGTERM" || fail "the coordinator exited $?"
    q "delete from meta where key = 'commit_seq'"
    rm -f "$ST/tfq.seq"
    start_coord
    serves_full
    [ -s "$ST/tfq.seq" ] || fail "no tfq.seq for a store made before it"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "ok: $CASE"
