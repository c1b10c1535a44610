#!/bin/bash
# tfq workers on real processes: a coordinator with a short heartbeat, a
# worker running a job (live), one without (idle) and one killed with
# SIGKILL (gone once the liveness window has passed, idle again when it
# comes back, gone at once when it stops on SIGTERM and says bye).  The
# table lists live, idle, gone with "ago"; --json and --csv carry the same
# workers, the numbers in seconds.
# Usage: test_workers.sh PATH-TO-TFQ
set -u

TFQ=$(realpath "${1:?usage: test_workers.sh PATH-TO-TFQ}")

. "$(dirname "$0")/lib_queue.sh"
. "$(dirname "$0")/lib_check.sh"
check_tmp workers
unset TFQ_CONNECT

# 250 ms heartbeats: the liveness window is 1 s (4 heartbeats; PROTOCOL.md),
# short for a quick test, long enough that a loaded machine keeps its lease.
"$TFQ" coordinator --state "$TMP/st" --bind 'tcp://127.0.0.1:*' \
    --heartbeat-ms 250 2>>"$TMP/coord.log" &
PIDS+=($!)
poll 60 test -s "$TMP/st/endpoint" || { fail "coordinator did not start"; exit 1; }
export TFQ_CONNECT=$(cat "$TMP/st/endpoint")

# state_is NAME STATE: tfq workers --json says worker NAME is in STATE.
state_is() {
    "$TFQ" workers --json >"$TMP/w.json" 2>/dev/null &&
        python3 -c 'import json, sys
w = {x["worker"]: x for x in json.load(open(sys.argv[1]))}
sys.exit(0 if sys.argv[2] in w and w[sys.argv[2]]["state"] == sys.argv[3] else 1)' \
            "$TMP/w.json" "$1" "$2"
}
start_worker() {
    "$TFQ" worker --name "$1" 2>>"$TMP/$1.log" &
    PIDS+=($!)
    LAST=$!
}

printf 'name = long\nkind = sleep\nsleep_ms = 600000\n' >"$TMP/long.txt"
expect "submit a long job" 0 -- submit "$TMP/long.txt" --as g
start_worker busy
poll 60 state_is busy live && ok "the worker running the job is live" ||
    fail "busy not live: $(cat "$TMP/w.json")"
start_worker idle
start_worker victim
VICTIM=$LAST
poll 60 state_is idle idle && ok "a worker without a job is idle" ||
    fail "idle not idle: $(cat "$TMP/w.json")"
poll 60 state_is victim idle || fail "victim not idle: $(cat "$TMP/w.json")"

{ kill -9 "$VICTIM"; wait "$VICTIM"; } 2>/dev/null
poll 60 state_is victim gone && ok "a worker killed with SIGKILL is gone" ||
    fail "victim not gone after 60 s: $(cat "$TMP/w.json")"
# Heard from all along, the others stayed what they were.
python3 -c 'import json, sys
w = {x["worker"]: x for x in json.load(open(sys.argv[1]))}
assert w["busy"]["state"] == "live" and w["busy"]["running"] == 1, w
assert w["idle"]["state"] == "idle" and w["idle"]["running"] == 0, w
assert w["victim"]["seen_s_ago"] > 0.8, w
assert all(isinstance(x["last_seen_ms"], int) and x["seen_s_ago"] >= 0
           for x in w.values()), w' "$TMP/w.json" &&
    ok "busy live, idle idle, victim unseen for over the window" ||
    fail "workers --json: $(cat "$TMP/w.json")"

expect "workers" 0 -- workers
python3 -c 'import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0].split() == ["worker", "state", "threads", "running", "done",
                            "seen"], lines[0]
rows = [l.split() for l in lines[1:]]
assert [r[:2] for r in rows] == [["busy", "live"], ["idle", "idle"],
                                 ["victim", "gone"]], rows
assert all(r[-1] == "ago" and r[-2][-1] in "smhd" for r in rows), rows' \
    "$TMP/out" && ok "the table: live, idle, gone, seen '...s ago'" ||
    fail "workers table: $(cat "$TMP/out")"
cp "$TMP/out" "$TMP/table.txt"

expect "workers --csv" 0 -- workers --csv
python3 -c 'import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert list(rows[0]) == ["worker", "state", "threads", "running", "done",
                         "seen_s_ago", "last_seen_ms"], list(rows[0])
assert [(r["worker"], r["state"]) for r in rows] == [
    ("busy", "live"), ("idle", "idle"), ("victim", "gone")], rows
assert float(rows[2]["seen_s_ago"]) > 0.8 and int(rows[2]["last_seen_ms"]) > 0
' "$TMP/out" && ok "workers --csv: the numbers, in seconds and ms" ||
    fail "workers --csv: $(cat "$TMP/out")"

# Back under the same name, the gone worker is idle again.
start_worker victim
poll 60 state_is victim idle && ok "a gone worker that comes back is idle" ||
    fail "victim back, not idle: $(cat "$TMP/w.json")"

# A worker that stops on SIGTERM says bye: gone at once, not a window
# later (seen_s_ago under the window is only possible through bye).
VICTIM=$LAST
kill -TERM "$VICTIM"
wait "$VICTIM" 2>/dev/null
state_is victim gone && python3 -c 'import json, sys
w = {x["worker"]: x for x in json.load(open(sys.argv[1]))}
assert w["victim"]["seen_s_ago"] < 0.9, w' "$TMP/w.json" &&
    ok "a worker stopped with SIGTERM is gone at once (bye)" ||
    fail "victim after SIGTERM: $(cat "$TMP/w.json")"

expect "status" 0 -- status
grep -Eq '^1 +long +busy +1 .* [0-9]+[smhd]([0-9]+[smh])? ago$' "$TMP/out" &&
    ok "status: the running job's start as 'ago'" ||
    fail "status table: $(cat "$TMP/out")"

echo "--- tfq workers"
cat "$TMP/table.txt"
echo "--- tfq status"
cat "$TMP/out"
[ "$failures" -eq 0 ] || exit 1
