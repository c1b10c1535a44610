#!/bin/bash
# tfq results as data: a tiny real grid (trained by a real worker), a copy
# of it under a name with a comma and a quote (every job reused) and plain
# jobs of a job file, read back with --csv, --json, --curves --csv and
# --curves --json by Python's csv and json modules and, when present,
# pandas.  The coordinates are checked against the jobs' names, the metric
# against tfq report's table.csv and against the evaluations themselves,
# the curves against the store's metrics table.  Usage: test_results.sh
# PATH-TO-TFQ
set -u
TFQ=$(realpath "${1:?usage: test_results.sh PATH-TO-TFQ}")
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-results-XXXXXX")
. "$(dirname "$0")/lib_queue.sh"
queue_harness results
PY=/usr/bin/python3

[ -x "$PY" ] || { echo "SKIP: no $PY"; exit 77; }
[ -d /usr/share/datasets/fashion-mnist ] || { echo "SKIP: no Fashion-MNIST"; exit 77; }

"$TFQ" coordinator --state "$DIR/st" --bind 'tcp://127.0.0.1:*' \
    2>>"$DIR/coord.log" &
PIDS+=("$!")
poll 60 test -s "$DIR/st/endpoint" || fail "coordinator did not start within 60 s"
EP=$(cat "$DIR/st/endpoint")

# 4 jobs of 3 epochs; top2 is neither the last nor the best evaluation.
cat >"$DIR/tiny.yaml" <<'YAML'
name: tiny
dataset: {kind: fashion-mnist, limit_train: 300, limit_test: 100}
train: {epochs: 3}
metric: top2
splits: {random: [0]}
directions: A->B
layers: 1
variants: [selffer, transfer]
finetune: frozen
seeds: [1]
YAML
# Plain jobs: no coordinates; one fails on each of its 2 attempts.
printf 'name = ok\nkind = sleep\nsleep_ms = 5\nseed = 7\n---\nname = bad\nkind = sleep\nsleep_ms = 5\nfail_prob = 1\nmax_attempts = 2\n' >"$DIR/plain.txt"
COPY='tiny,"q"'
"$TFQ" submit "$DIR/tiny.yaml" --connect "$EP" >/dev/null || fail "submit tiny"
"$TFQ" submit "$DIR/plain.txt" --as plain --connect "$EP" >/dev/null || fail "submit plain"
"$TFQ" worker --connect "$EP" --name w1 --exit-when-idle 2>>"$DIR/w1.log" &
WPID=$!
PIDS+=("$WPID")
wait_exit 600 "$WPID" w1 || fail "worker exited $?"
"$TFQ" submit "$DIR/tiny.yaml" --as "$COPY" --connect "$EP" | grep -q "0 jobs added, 4 reused" || fail "the copy did not reuse the grid's jobs"
[ "$(q "select count(*) from jobs where state = 'succeeded'")" = 9 ] || fail "not 9 jobs succeeded: $(q "select name, state from jobs")"

for f in "csv:--csv" "json:--json"; do
    "$TFQ" results ${f#*:} --connect "$EP" >"$DIR/results.${f%%:*}" 2>"$DIR/err.log" || fail "results ${f#*:}: $(cat "$DIR/err.log")"
    "$TFQ" results tiny --curves ${f#*:} --connect "$EP" >"$DIR/curves.${f%%:*}" 2>"$DIR/err.log" || fail "results tiny --curves ${f#*:}: $(cat "$DIR/err.log")"
done
"$TFQ" results "$COPY" --curves --csv --connect "$EP" >"$DIR/copy_curves.csv" || fail "curves of the copy"
"$TFQ" results plain --curves --json --connect "$EP" >"$DIR/plain_curves.json" || fail "curves of the plain grid"
"$TFQ" results tiny --curves --connect "$EP" | cmp -s - "$DIR/curves.csv" || fail "--curves is not CSV by default"
"$TFQ" report tiny -o "$DIR/rep" --connect "$EP" >/dev/null 2>"$DIR/err.log" || fail "report: $(cat "$DIR/err.log")"
"$TFQ" results nope --curves --connect "$EP" >/dev/null 2>"$DIR/err.log"
rc=$?
[ "$rc" = 1 ] && grep -q "no grid named 'nope'" "$DIR/err.log" || fail "curves of an unknown grid: exit $rc, $(cat "$DIR/err.log")"
grep -q '^[0-9]*,"tiny,""q""",' "$DIR/results.csv" || fail "the copy's grid is not one quoted CSV field: $(grep q "$DIR/results.csv")"

"$PY" - "$DIR" "$COPY" <<'PY' || fail "the Python checks"
import csv, json, math, sqlite3, sys

d, copy = sys.argv[1], sys.argv[2]
COORDS = ["split", "similarity", "target", "n", "variant", "finetune", "seed",
          "sweep"]
RESULT_HEADER = (["job", "grid", "name", "state", "attempts"] + COORDS +
                 ["metric", "acc", "error", "final_acc", "best_acc", "topk",
                  "topk_acc"])
CURVE_HEADER = (["job", "grid", "name"] + COORDS +
                ["attempt", "epoch", "loss", "test_acc", "images_per_s"])


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok: " + what)


def read_csv(name):
    with open(f"{d}/{name}", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, [dict(zip(header, row)) for row in r]


def coords_of(grid, name):
    """split, similarity, target, n, variant, finetune, seed and sweep
    (none here) from the name of a job of a grid file: SPLIT/SEED/baseT or
    SPLIT/SEED/SnT[+]."""
    split, seed, net = name.split("/")
    sim = "dissimilar" if split == "dissimilar" else "random"
    if net.startswith("base"):
        return [split, sim, net[4], "0", "base", "0", seed, ""]
    ft = "1" if net.endswith("+") else "0"
    net = net.rstrip("+")
    src, n, tgt = net[0], net[1:-1], net[-1]
    return [split, sim, tgt, n, "selffer" if src == tgt else "transfer", ft,
            seed, ""]


header, rows = read_csv("results.csv")
check(header == RESULT_HEADER, "results --csv header: " + ",".join(header))
with open(f"{d}/results.json") as f:
    jobs = json.load(f)
check([r["job"] for r in rows] == [str(j["job"]) for j in jobs],
      "results --csv and --json have the same jobs in the same order")
by_id = {j["job"]: j for j in jobs}
check(any(j.get("result") is None for j in jobs) and
      all(j.get("bad_result") is None for j in jobs),
      "a job without a result is not said to have a bad one")
grids = {}
for r in rows:
    grids.setdefault(r["grid"], []).append(r)
check(sorted(grids) == sorted(["tiny", copy, "plain"]) and
      len(grids["tiny"]) == 4 and len(grids[copy]) == 4,
      f"the grids read back whole, {copy!r} as one field")

# Coordinates: those the job's name says; a plain job has none.
for r in grids["tiny"] + grids[copy]:
    check([r[k] for k in COORDS] == coords_of(r["grid"], r["name"]),
          f"{r['grid']} {r['name']}: coordinates {[r[k] for k in COORDS]}")
for r in grids["plain"]:
    check(all(r[k] == "" for k in COORDS if k != "seed") and
          r["seed"] == ("7" if r["name"] == "ok" else "0") and
          r["acc"] == "", f"plain {r['name']}: empty coordinates and acc")
check(next(r for r in grids["plain"] if r["name"] == "bad")["error"]
      .startswith("sleep job failed"), "a failed job's error")

# The metric: the grid's, its value the mean of the 2 best evaluations.
for r in grids["tiny"] + grids[copy]:
    j = by_id[int(r["job"])]
    accs = sorted(j["result"]["accs"], reverse=True)
    want = (accs[0] + accs[1]) / 2
    check(r["metric"] == "top2" and j["metric"] == "top2" and
          float(r["acc"]) == j["acc"] and abs(j["acc"] - want) < 1e-12,
          f"{r['grid']} {r['name']}: top2 {r['acc']} (evaluations {accs})")
check(all(k in j for j in jobs for k in ("result", "checkpoint", "attempts",
                                        "reused_from", "error")),
      "--json keeps the coordinator's keys")
# ... and what tfq report made of the same runs.
_, points = read_csv("rep/table.csv")
groups = {}
for r in grids["tiny"]:
    key = (r["similarity"], r["variant"], r["finetune"], r["n"])
    groups.setdefault(key, []).append(float(r["acc"]))
check(len(points) == len(groups), f"{len(points)} points in table.csv")
for p in points:
    accs = groups[(p["similarity"], p["variant"], p["finetune"], p["n"])]
    check(int(p["runs"]) == len(accs) and
          abs(float(p["mean"]) - sum(accs) / len(accs)) < 1e-6,
          f"table.csv {p['variant']} n={p['n']}: mean {p['mean']} of "
          f"{accs}")

# Curves: a row per epoch of every attempt, as the store has them.
db = sqlite3.connect(f"file:{d}/st/tfq.db?mode=ro", uri=True, timeout=10)
STORE = ("SELECT m.attempt, m.epoch, m.loss, m.test_acc, m.images_per_s "
         "FROM jobs j JOIN grids g ON g.id = j.grid_id JOIN metrics m ON "
         "m.job_id = coalesce(j.reused_from, j.id) WHERE g.name = ? AND "
         "j.name = ? ORDER BY m.attempt, m.epoch")


def same_as_store(grid, curve_rows):
    results = {r["name"]: r for r in grids[grid]}
    seen = {}
    for c in curve_rows:
        seen.setdefault(c["name"], []).append(c)
    check(sorted(seen) == sorted(results), f"curves of {grid}: every job")
    for name, cs in seen.items():
        want = db.execute(STORE, (grid, name)).fetchall()
        got = [(int(c["attempt"]), int(c["epoch"]), float(c["loss"]),
                float(c["test_acc"]), float(c["images_per_s"])) for c in cs]
        check(len(got) == len(want) and all(
                  g[:2] == w[:2] and all(math.isclose(a, b, rel_tol=1e-12)
                                         for a, b in zip(g[2:], w[2:]))
                  for g, w in zip(got, want)),
              f"curves of {grid} {name}: {len(got)} rows as stored")
        check(all(str(c[k]) == results[name][k] for c in cs for k in
                  ["job"] + COORDS),
              f"curves of {grid} {name}: the job's id and coordinates")


header, curves = read_csv("curves.csv")
check(header == CURVE_HEADER, "curves --csv header: " + ",".join(header))
same_as_store("tiny", curves)
for r in grids["tiny"]:
    check([(c["attempt"], c["epoch"]) for c in curves
           if c["name"] == r["name"]] == [("1", str(e)) for e in (1, 2, 3)],
          f"{r['name']}: attempt 1, epochs 1..3")
_, copy_curves = read_csv("copy_curves.csv")
same_as_store(copy, copy_curves)
check(all(c["grid"] == copy for c in copy_curves),
      "the copy's curves (its source's epochs) under its own grid")
with open(f"{d}/curves.json") as f:
    cj = json.load(f)
NUMBERS = ("loss", "test_acc", "images_per_s")


def same_row(o, c):
    return all(float(o[k]) == float(c[k]) if k in NUMBERS else
               ("" if o[k] is None else str(o[k])) == c[k]
               for k in CURVE_HEADER)


check(len(cj) == len(curves) and all(map(same_row, cj, curves)),
      "curves --json: the rows of --csv")
check(all(isinstance(o[k], (int, float)) and not isinstance(o[k], bool)
          for o in cj for k in ("attempt", "epoch") + NUMBERS),
      "curves' numbers are numbers")
with open(f"{d}/plain_curves.json") as f:
    pj = json.load(f)
check(all(o[k] is None for o in pj for k in COORDS if k != "seed"),
      "plain jobs' curves: null coordinates")
same_as_store("plain", [{k: "" if v is None else str(v) for k, v in o.items()}
                        for o in pj])

try:
    import pandas
except ImportError:
    print("skip: pandas is not installed: its reading of the CSV not checked")
    sys.exit(0)
res = pandas.read_csv(f"{d}/results.csv")
check(list(res.columns) == RESULT_HEADER, "pandas: results columns")
check(res["acc"].dtype.kind == "f" and res["n"].dtype.kind == "f",
      "pandas: acc and n are numbers (NaN for plain jobs)")
check(set(res["grid"]) == {"tiny", copy, "plain"}, "pandas: the grid names")
t = res[res["grid"] == "tiny"].set_index("job")
check(all(t.loc[j["job"], "acc"] == j["acc"] for j in jobs
          if j["grid"] == "tiny"), "pandas: acc as in --json")
cur = pandas.read_csv(f"{d}/curves.csv")
check(list(cur.columns) == CURVE_HEADER, "pandas: curves columns")
per_job = cur.groupby(["job", "attempt"])["epoch"].apply(list)
check(all(v == [1, 2, 3] for v in per_job), "pandas: epochs 1..3 per job")
check(all(cur[k].dtype.kind == "f" for k in NUMBERS),
      "pandas: the curves' numbers are floats")
check(len(pandas.DataFrame(cj)) == len(cur), "pandas: --json as a frame")
PY
echo "ok: results"
