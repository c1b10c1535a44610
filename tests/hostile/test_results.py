#!/usr/bin/python3
"""Forged and broken results against the real coordinator: a `result`
whose metrics are not valid JSON, not an object, have an unknown field or
one out of its range is refused with TFQ_EINVAL naming what was wrong, and
nothing is stored (jobs.result stays NULL, the attempt keeps running); the
worker's real result is accepted after them, and `tfq results` and
`tfq report` still work.

Usage: test_results.py CASE TFQ
"""
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (EINVAL, REPLY_S, check, lease_of, main,  # noqa: E402
                     poll, result_msg)

FINGERPRINT = "ab" * 32

GRID = f"""name: tiny
dataset: {{kind: fashion-mnist, fingerprint: {FINGERPRINT}, limit_train: 600, limit_test: 200}}
train: {{epochs: 1}}
splits: {{random: [0]}}
directions: A->B
layers: 1
variants: [selffer, transfer]
finetune: frozen
seeds: [1]
"""


def good_result(acc):
    """A train job's result as `tfq train --json` writes it."""
    accs = [round(acc - 0.01 * (9 - e), 4) for e in range(10)]
    return json.dumps({"final_acc": accs[-1], "best_acc": max(accs),
                       "topk_acc": sum(accs) / 10, "topk": 10, "epochs": 10,
                       "final_loss": 0.3, "train_seconds": 1.5,
                       "data_fingerprint": FINGERPRINT, "accs": accs})


# (result text, what the refusal must name)
BAD = [
    ("not json {", "JSON"),
    ('{"final_acc": NaN}', "JSON"),
    ("[0.5, 0.6]", "JSON object"),
    ('"final_acc"', "JSON object"),
    ('{"final_acc": 0.5, "test_acc": 0.999}', "'test_acc'"),
    ('{"test_acc": 0.999}', "'test_acc'"),
    ('{"final_acc": 1.5}', "'final_acc'"),
    ('{"final_acc": -0.1}', "'final_acc'"),
    ('{"final_acc": "0.5"}', "'final_acc'"),
    ('{"final_acc": {"x": 1}}', "'final_acc'"),
    ('{"epochs": 2.5}', "'epochs'"),
    ('{"topk": -1}', "'topk'"),
    ('{"final_loss": -3}', "'final_loss'"),
    ('{"data_fingerprint": "xyz"}', "'data_fingerprint'"),
    ('{"data_fingerprint": "' + "AB" * 32 + '"}', "'data_fingerprint'"),
    ('{"accs": [0.5, 7]}', "'accs'"),
    ('{"accs": 0.5}', "'accs'"),
    ('{"accs": [' + ", ".join(["0.5"] * 4000) + "]}", "bytes"),
]


def result_validation(c):
    c.submit(GRID, "tiny", name="tiny.yaml")
    check(c.q1("select count(*) from jobs") == 4,
          f"the grid has {c.q1('select count(*) from jobs')} jobs, not 4")
    w = c.peer("forger")
    w.hello()
    accs = {}
    refused = 0
    for _ in range(4):
        # A job's dependents are ready once it has succeeded.
        job = poll(REPLY_S, lambda: w.ready(1), "a job for the forger")[0]
        jid, attempt = job["job"], job["attempt"]
        for text, names in BAD:
            what = f"job {jid}: result {text[:60]!r}"
            r = w.expect_error(result_msg(job, text), EINVAL, what=what)
            check(names in r["msg"], f"{what}: refused as {r['msg']!r}, "
                  f"which does not name {names}")
            check(r.get("re") == "result", f"{what}: the error's re is "
                  f"{r.get('re')!r}")
            row = c.q("select j.state, j.result, a.state from jobs j join "
                      "attempts a on a.job_id = j.id where j.id = ? and "
                      "a.attempt = ?", (jid, attempt))
            check(row == [("running", None, "running")],
                  f"{what}: the store holds {row} (job state, result, "
                  f"attempt state), expected running, NULL, running")
            refused += 1
        w.expect({"k": "heartbeat", **lease_of(job), "epoch": 0,
                  "step": 0}, "ack")
        acc = 0.5 + 0.1 * len(accs)
        good = good_result(acc)
        w.expect(result_msg(job, good), "ack")
        stored = c.q1("select result from jobs where id = ? and state = "
                      "'succeeded'", (jid,))
        check(stored is not None and json.loads(stored) == json.loads(good),
              f"job {jid}: the real result after the forged ones is stored "
              f"as {stored!r}")
        accs[jid] = acc
    check(len(accs) == 4, f"{len(accs)} of 4 jobs finished")
    check(c.q1("select count(*) from attempts") == 4,
          "a refused result cost an attempt")
    check(c.q1("select count(*) from events where kind = 'succeeded'") == 4,
          "the events log other than 4 successes")
    r = c.run_tfq("results", "tiny", "--json")
    items = json.loads(r.stdout)
    check(len(items) == 4 and all(i["state"] == "succeeded" for i in items),
          f"tfq results: {r.stdout[:400]}")
    c.run_tfq("results", "tiny")
    out = os.path.join(c.dir, "report")
    c.run_tfq("report", "tiny", "-o", out)
    for f in ("figure2.svg", "figure3.svg", "table.md", "table.csv"):
        check(os.path.getsize(os.path.join(out, f)) > 0,
              f"tfq report wrote no {f}")
    print(f"# {refused} forged or broken results refused naming the field, "
          f"nothing stored; 4 real ones stored; results and report work")


if __name__ == "__main__":
    main({"forged_results": result_validation})
