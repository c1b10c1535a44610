#!/usr/bin/python3
"""The coordinator's state directory fills up (a small tmpfs; root, else
skipped): while it is full the coordinator stays up, `tfq status` keeps
answering and nothing committed is lost; once there is room again the grid
finishes and the database passes integrity_check.  And an orphaned
checkpoint upload (chunks for a job that does not exist, never finished)
must not take the room a grid needs: it is refused, and leaves nothing.

Usage: test_disk_full.py CASE TFQ
"""
import errno
import hashlib
import json
import os
import sqlite3
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (REPLY_S, Skip, check, main, poll,  # noqa: E402
                     sleep_grid)

JOBS = 120
STATUS_TRIES = 20
FULL_WORDS = ("full", "No space", "ENOSPC")


def counts(c):
    return dict(c.q("select state, count(*) from jobs group by 1"))


def succeeded(c):
    return dict(c.q("select id, result from jobs where state = 'succeeded'"))


def fill_up(path):
    """Writes zeros to path until the file system is full; the bytes
    written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    try:
        # Large blocks, then smaller ones into what is left.
        for size in (64 << 10, 4096, 512, 1):
            while True:
                try:
                    n += os.write(fd, bytes(size))
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return n


def integrity(c):
    db = sqlite3.connect(f"file:{c.state}/tfq.db?mode=ro", uri=True,
                         timeout=REPLY_S)
    try:
        return [r[0] for r in db.execute("pragma integrity_check")]
    finally:
        db.close()


def committed_kept(c, before, when):
    now = succeeded(c)
    lost = {j: r for j, r in before.items() if now.get(j) != r}
    check(not lost, f"{when}: {len(lost)} of the {len(before)} jobs that "
          f"had succeeded before the disk filled are no longer succeeded "
          f"with their result: {sorted(lost)[:10]}")
    return now


def status_answers(c, when):
    r = c.run_tfq("status", "--json", check_rc=False)
    check(r.returncode == 0, f"{when}: tfq status exited {r.returncode}: "
          f"{r.stderr.strip()}")
    json.loads(r.stdout)


def fill(c):
    c.submit(sleep_grid(JOBS, sleep_ms=200), "g")
    c.worker("w1")
    c.worker("w2")
    poll(300, lambda: counts(c).get("succeeded", 0) >= 30,
         f"30 of {JOBS} jobs succeeded (before filling the disk)")
    before = succeeded(c)
    filler = os.path.join(c.state, "filler")
    filled = fill_up(filler)
    st = os.statvfs(c.state)
    print(f"# filled: {len(before)} jobs succeeded; {filled} bytes of filler, "
          f"{st.f_bavail * st.f_frsize} bytes left")
    log_at = len(c.log_text())
    # The coordinator meets the full disk at its next write and says so
    # (or copes without a word: 20 more jobs succeed).
    poll(300, lambda: any(w in c.log_text()[log_at:] for w in FULL_WORDS)
         or len(succeeded(c)) >= len(before) + 20 or not c.alive(),
         "the coordinator logging that the disk is full, or 20 more jobs "
         "succeeding on the full disk")
    c.check_alive("the disk filled")
    for i in range(STATUS_TRIES):
        status_answers(c, f"disk full, status {i + 1} of {STATUS_TRIES}")
        c.check_alive(f"the disk filled (status {i + 1})")
        committed_kept(c, before, "while the disk is full")
    during = counts(c)
    full_log = [line for line in c.log_text()[log_at:].splitlines()
                if any(w in line for w in FULL_WORDS)]
    os.unlink(filler)
    poll(600, lambda: counts(c).get("succeeded", 0) == JOBS or
         counts(c).get("failed", 0),
         f"all {JOBS} jobs succeeded after the filler was deleted "
         f"({counts(c)})")
    check(counts(c) == {"succeeded": JOBS}, f"after the filler was deleted "
          f"the grid ended as {counts(c)}, expected {JOBS} succeeded")
    committed_kept(c, before, "after the filler was deleted")
    check(integrity(c) == ["ok"], f"integrity_check: {integrity(c)}")
    status_answers(c, "after the filler was deleted")
    attempts = dict(c.q("select state, count(*) from attempts group by 1"))
    print(f"# while full: {during}; {len(full_log)} log lines about the "
          f"full disk, e.g. {full_log[:1]}; after: {counts(c)}, attempts "
          f"{attempts}")


ORPHAN_BYTES = 7 << 19  # 3.5 MiB of a 4 MiB file system
FULL_FAILURES = 50


def orphan_upload(c):
    p = c.peer("orphan")
    p.hello()
    blob = bytes(range(256)) * 4096  # 1 MiB
    total = 64 << 20
    sha = hashlib.sha256(b"never sent whole").hexdigest()
    replies = []
    off = 0
    while off < ORPHAN_BYTES:
        n = min(len(blob), ORPHAN_BYTES - off)
        r = p.request({"k": "ckpt_put", "job": 424242, "attempt": 1,
                       "epoch": 1, "offset": off, "total": total,
                       "sha256": sha, "data": blob[:n]})
        replies.append(r["k"] if r["k"] != "error" else
                       f"error {r.get('code')} {r.get('msg')!r}")
        if r["k"] != "ack":
            break
        off += n
    ckpt = os.path.join(c.state, "ckpt")
    uploads = {f: os.path.getsize(os.path.join(ckpt, f))
               for f in os.listdir(ckpt)}
    st = os.statvfs(c.state)
    print(f"# the orphan's {len(replies)} chunks: {replies}; STATE/ckpt "
          f"holds {uploads}; {st.f_bavail * st.f_frsize} bytes left")
    path = os.path.join(c.dir, "g200.txt")
    with open(path, "w") as f:
        f.write(sleep_grid(200, sleep_ms=20))
    r = c.run_tfq("submit", path, "--as", "g", check_rc=False)
    check(r.returncode == 0, f"a 200-job grid after a {ORPHAN_BYTES}-byte "
          f"orphaned upload: tfq submit exited {r.returncode}: "
          f"{r.stderr.strip()} (STATE/ckpt holds {uploads})")
    log_at = len(c.log_text())
    c.worker("w1", "--exit-when-idle")
    c.worker("w2", "--exit-when-idle")

    def commit_failed():
        return [x for x in c.log_text()[log_at:].splitlines()
                if "committing" in x or any(w in x for w in FULL_WORDS)]
    # Done: every job succeeded, or the workers left, or the coordinator
    # keeps failing for want of room (FULL_FAILURES refusals: one that
    # frees the orphan's room would have stopped long before).
    poll(600, lambda: counts(c).get("succeeded", 0) == 200 or
         all(w.poll() is not None for w in c.workers) or
         len(commit_failed()) >= FULL_FAILURES,
         f"the 200 jobs finishing beside the orphaned upload ({counts(c)})")
    failed = commit_failed()
    check(counts(c) == {"succeeded": 200}, f"beside a {ORPHAN_BYTES}-byte "
          f"orphaned upload (for job 424242, which does not exist) the grid "
          f"is {counts(c)}, expected 200 succeeded; the coordinator logged "
          f"{len(failed)} failures for want of room, such as {failed[:2]}; "
          f"expected the upload refused or dropped")
    check(integrity(c) == ["ok"], f"integrity_check: {integrity(c)}")


if __name__ == "__main__":
    main({"disk_full": (fill, {"tmpfs_bytes": 8 << 20}),
          "orphan_upload": (orphan_upload, {"tmpfs_bytes": 4 << 20})})
