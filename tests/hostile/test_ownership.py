#!/usr/bin/python3
"""A lease belongs to the peer that took it (issue 10): an intruder, another
routing id without the lease's token, cannot finish, release, heartbeat,
report or checkpoint a job leased to another worker (TFQ_EPERM, and
nothing changes); uploads are bounded (no upload for a job that does not
exist, no 16 GiB total); a peer that takes over a live worker's routing id
gets none of its replies; one peer holds at most 64 leases; workers that
vanish with their leases do not make jobs fail, their attempts are counted
as lost.

Usage: test_ownership.py CASE TFQ
"""
import hashlib
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (EPERM, REPLY_S, Failure, check, code_name,  # noqa: E402
                     lease_of, main, poll, result_msg, sleep_grid, zmq)

# Long enough that no lease of these cases expires while they run (40 s
# of liveness), unless a case waits for it.
HOLD_HB_MS = 10000

FORGED = json.dumps({"final_acc": 0.999, "best_acc": 0.999,
                     "topk_acc": 0.999, "topk": 10, "epochs": 10,
                     "final_loss": 0.01, "train_seconds": 1.0,
                     "data_fingerprint": "", "accs": [0.999] * 10})

WRONG_LEASE = "0123456789abcdef" * 4


def sleep_ckpt(epoch):
    """A sleep job's checkpoint of `epoch` (worker/job.c)."""
    return f"tfq sleep checkpoint 1 epoch {epoch}\n".encode()


def ckpt_chunks(job, blob, epoch, cut=None):
    """The ckpt_put messages of blob (job: the `job` reply), cut in two at
    `cut` when given."""
    sha = hashlib.sha256(blob).hexdigest()
    cuts = [0, cut, len(blob)] if cut else [0, len(blob)]
    return [{"k": "ckpt_put", **lease_of(job), "epoch": epoch, "offset": a,
             "total": len(blob), "sha256": sha, "data": blob[a:b]}
            for a, b in zip(cuts, cuts[1:])]


def forgeries(job, msg):
    """msg as an intruder sends it: without a lease token and with a wrong
    one (what, message)."""
    bare = {k: v for k, v in msg.items() if k != "lease"}
    return [("without a lease token", bare),
            ("with a wrong lease token", {**bare, "lease": WRONG_LEASE})]


def leased_to(c, job, worker):
    """Fails unless the attempt of `job` is running for worker and the job
    holds no result."""
    row = c.q("select j.state, j.result, a.state, a.worker from jobs j join "
              "attempts a on a.job_id = j.id where j.id = ? and a.attempt = ?",
              (job["job"], job["attempt"]))
    check(row == [("running", None, "running", worker)],
          f"job {job['job']} attempt {job['attempt']}: the store holds "
          f"{row} (job state, result, attempt state, worker), expected "
          f"running, NULL, running, {worker!r}")


def victim_and_intruder(c, jobs=1):
    c.submit(sleep_grid(jobs, sleep_ms=1000), "g")
    victim = c.peer("victim")
    victim.hello()
    job = victim.ready(1)[0]
    intruder = c.peer("intruder")
    intruder.hello()
    return victim, intruder, job


def refused(intruder, what, msg):
    r = intruder.request(msg)
    check(r["k"] == "error" and r.get("code") == EPERM,
          f"{what} from an intruder (another routing id) was answered "
          f"{r!r}, expected error TFQ_EPERM ({EPERM})")


def intruder_result(c):
    victim, intruder, job = victim_and_intruder(c)
    for text, why in ((FORGED, "a forged result"),
                      ('{"test_acc": 0.999}', 'a forged {"test_acc": 0.999}')):
        for how, m in forgeries(job, result_msg(job, text)):
            refused(intruder, f"{why} {how}", m)
            leased_to(c, job, "victim")
    for how, m in forgeries(job, result_msg(job, "stolen", ok=False)):
        refused(intruder, f"failure report {how}", m)
        leased_to(c, job, "victim")
    check(c.q1("select count(*) from events where kind in ('succeeded', "
               "'failed')") == 0, "the intruder's result reached the events")
    victim.expect(result_msg(job, "{}"), "ack")
    check(c.q1("select result from jobs where id = ? and state = "
               "'succeeded'", (job["job"],)) == "{}",
          "the victim's real result was not stored after the intruder's")


def intruder_release(c):
    victim, intruder, job = victim_and_intruder(c)
    for how, m in forgeries(job, {"k": "release", **lease_of(job)}):
        refused(intruder, f"release {how}", m)
        leased_to(c, job, "victim")
    # Nobody else can take the job while the victim holds it.
    check(intruder.ready(1) == [], "the intruder was leased the victim's "
          "job after its release was refused")
    victim.expect(result_msg(job, "{}"), "ack")


def intruder_alive(c):
    victim, intruder, job = victim_and_intruder(c)
    beat = c.q1("select heartbeat_ms from attempts where job_id = ? and "
                "attempt = ?", (job["job"], job["attempt"]))
    time.sleep(0.01)  # a heartbeat now would store another time
    hb = {"k": "heartbeat", **lease_of(job), "epoch": 1, "step": 10}
    progress = {"k": "progress", **lease_of(job), "epoch": 1, "loss": 0.1,
                "test_acc": 0.999, "images_per_s": 1.0, "eta_s": 0.0}
    for what, msg in (("heartbeat", hb), ("progress", progress)):
        for how, m in forgeries(job, msg):
            refused(intruder, f"{what} {how}", m)
            leased_to(c, job, "victim")
    now = c.q1("select heartbeat_ms from attempts where job_id = ? and "
               "attempt = ?", (job["job"], job["attempt"]))
    check(now == beat, f"the intruder's heartbeats moved the victim's "
          f"heartbeat from {beat} to {now}")
    check(c.q1("select count(*) from metrics") == 0,
          f"the intruder's progress was stored: {c.q('select * from metrics')}")
    victim.expect(hb, "ack")
    victim.expect(progress, "ack")
    victim.expect(result_msg(job, "{}"), "ack")


def uploads(c):
    d = os.path.join(c.state, "ckpt")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def intruder_ckpt_put(c):
    victim, intruder, job = victim_and_intruder(c)
    for i, m in enumerate(ckpt_chunks(job, sleep_ckpt(3), 3)):
        for how, f in forgeries(job, m):
            refused(intruder, f"checkpoint chunk {i} {how}", f)
    check(c.q1("select count(*) from checkpoints") == 0,
          "the intruder's checkpoint was stored")
    check(uploads(c) == [], f"the intruder's checkpoint left files: "
          f"{uploads(c)}")
    leased_to(c, job, "victim")
    for m in ckpt_chunks(job, sleep_ckpt(1), 1, cut=16):
        victim.expect(m, "ack")
    check(c.q1("select epoch from checkpoints where job_id = ?",
               (job["job"],)) == 1, "the victim's checkpoint was not stored")
    victim.expect(result_msg(job, "{}"), "ack")


def ckpt_put_no_job(c):
    p = c.peer("uploader")
    p.hello()
    blob = bytes(range(256)) * 64
    sha = hashlib.sha256(blob).hexdigest()
    m = {"k": "ckpt_put", "job": 424242, "attempt": 1, "epoch": 1,
         "offset": 0, "total": len(blob) * 2, "sha256": sha,
         "data": blob}
    r = p.request(m)
    check(r["k"] == "error", f"a chunk for job 424242 (no such job) was "
          f"answered {r!r}, expected an error")
    left = [f for f in uploads(c) if f.startswith(".upload-")]
    check(left == [], f"a chunk for job 424242 left {left} in STATE/ckpt")
    print(f"# job 424242: {code_name(r.get('code'))} {r.get('msg')!r}")


def ckpt_put_huge_total(c):
    c.submit(sleep_grid(1, sleep_ms=1000), "g")
    w = c.peer("w")
    w.hello()
    job = w.ready(1)[0]
    m = {"k": "ckpt_put", **lease_of(job), "epoch": 1, "offset": 0,
         "total": 1 << 34, "sha256": "ab" * 32, "data": bytes(1 << 20)}
    r = w.request(m)
    check(r["k"] == "error", f"a checkpoint announcing 2^34 bytes was "
          f"answered {r!r}, expected an error")
    left = [f for f in uploads(c) if f.startswith(".upload-")]
    check(left == [], f"a 2^34-byte upload left {left} in STATE/ckpt")
    print(f"# total 2^34: {code_name(r.get('code'))} {r.get('msg')!r}")
    w.expect(result_msg(job, "{}"), "ack")


def routing_id_takeover(c):
    """An impostor connects with the routing id of a worker that holds a
    lease and is uploading a checkpoint: the impostor receives nothing and
    the worker's chunks are all acked."""
    c.submit(sleep_grid(1, sleep_ms=1000), "g")
    honest = c.peer("honest")
    honest.hello()
    job = honest.ready(1)[0]
    chunks = ckpt_chunks(job, sleep_ckpt(1), 1, cut=16)
    honest.expect(chunks[0], "ack")
    impostor = c.ctx.socket(zmq.DEALER)
    impostor.setsockopt(zmq.LINGER, 0)
    impostor.setsockopt(zmq.ROUTING_ID, b"honest")
    mon = impostor.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED |
                                      zmq.EVENT_DISCONNECTED)
    impostor.connect(c.endpoint)
    check(mon.poll(int(REPLY_S * 1000)), "the impostor did not connect "
          f"within {REPLY_S:g} s")
    mon.recv_multipart()
    try:
        poller = zmq.Poller()
        poller.register(honest.sock, zmq.POLLIN)
        poller.register(impostor, zmq.POLLIN)
        for what, m in (("the last checkpoint chunk", chunks[1]),
                        ("a heartbeat", {"k": "heartbeat", **lease_of(job),
                                         "epoch": 1, "step": 1})):
            honest.send(m)
            ready = dict(poller.poll(int(REPLY_S * 1000)))
            if impostor in ready:
                raise Failure(f"the impostor with the honest worker's "
                              f"routing id received the reply to {what}: "
                              f"{impostor.recv_multipart()!r}")
            check(honest.sock in ready, f"the honest worker got no reply to "
                  f"{what} within {REPLY_S:g} s")
            r = honest.recv(0.01)
            check(r["k"] == "ack", f"the honest worker's {what} was answered "
                  f"{r!r}")
        check(c.q1("select epoch from checkpoints where job_id = ?",
                   (job["job"],)) == 1,
              "the honest worker's checkpoint was not stored")
        honest.expect(result_msg(job, "{}"), "ack")
        if impostor.poll(500):
            raise Failure(f"the impostor received "
                          f"{impostor.recv_multipart()!r}")
    finally:
        impostor.disable_monitor()
        mon.close(0)
        impostor.close(0)


def lease_cap(c):
    c.submit(sleep_grid(400, sleep_ms=60000), "g")
    p = c.peer("greedy")
    p.hello()
    got = 0
    for _ in range(8):
        r = p.request({"k": "ready", "max": 64})
        while r["k"] == "job":
            got += 1
            if not r.get("more"):
                break
            r = p.recv(what="the rest of a batch")
        check(r["k"] in ("job", "no_job", "error"), f"ready answered {r!r}")
    held = c.q1("select count(*) from attempts where worker = 'greedy' and "
                "state = 'running'")
    check(got <= 64 and held <= 64, f"one peer asking ready max=64 eight "
          f"times was given {got} jobs and holds {held} leases, expected at "
          f"most 64")
    print(f"# greedy peer: {got} jobs given, {held} held")


def no_failed(c, taken):
    failed = c.q1("select count(*) from jobs where state = 'failed'")
    check(failed == 0, f"{failed} jobs failed after {taken} leases of "
          f"vanished workers; lost attempts must not make a job fail: "
          f"{c.q('select state, count(*) from attempts group by 1')}")
    return True


def vanishing_workers(c):
    """2,000 fake workers each take a lease and vanish without a word."""
    jobs = 200
    c.submit(sleep_grid(jobs), "g")
    fakes = int(os.environ.get("TFQ_FAKE_WORKERS", "2000"))
    taken = 0
    for i in range(fakes):
        p = c.peer(f"fake-{i}")
        p.hello()
        job = poll(REPLY_S * 4, lambda: no_failed(c, taken) and p.ready(1),
                   f"a job for fake worker {i} (the lost leases are not "
                   f"requeued)")
        taken += len(job)
        p.close()
        c.peers.remove(p)
    no_failed(c, taken)
    poll(REPLY_S * 4, lambda: c.q1("select count(*) from attempts where "
                                   "state = 'running'") == 0,
         "the vanished workers' leases expiring")
    lost = c.q1("select count(*) from attempts where state = 'lost'")
    check(lost == taken, f"{taken} leases vanished, {lost} attempts lost")
    no_failed(c, taken)
    r = c.run_tfq("status", "--json")
    check('"failed": 0' in r.stdout, f"tfq status: {r.stdout}")
    print(f"# {taken} leases taken by {fakes} vanished workers: {lost} "
          f"attempts lost, no job failed")


if __name__ == "__main__":
    hold = {"heartbeat_ms": HOLD_HB_MS}
    main({"intruder_result": (intruder_result, hold),
          "intruder_release": (intruder_release, hold),
          "intruder_alive": (intruder_alive, hold),
          "intruder_ckpt_put": (intruder_ckpt_put, hold),
          "ckpt_put_no_job": (ckpt_put_no_job, hold),
          "ckpt_put_huge_total": (ckpt_put_huge_total, hold),
          "routing_id_takeover": (routing_id_takeover, hold),
          "lease_cap": (lease_cap, hold),
          "vanishing_workers": (vanishing_workers, {"heartbeat_ms": 50})})
