#!/usr/bin/python3
"""Malformed frames against the real coordinator: hand-made cases (garbage,
truncations, multipart messages, wrong versions, unknown kinds, wrong
types and ranges, deep nesting, hostile counts), about 2,000 mutants of
valid frames, and oversized frames.  Every bad frame is answered with
`error` and the code the protocol prescribes; the coordinator stays up, a
later valid request is served, and the store is unchanged.

Usage: test_frames.py CASE TFQ
"""
import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (EFORMAT, EINVAL, EPERM, ERANGE, EVERSION, MAX_CHUNK_BYTES,  # noqa: E402
                     MAX_FRAME_BYTES, Failure, check, code_name, main,
                     msgpack, pack, sleep_grid)

ETRUNC = -7
ANY = (EFORMAT, ETRUNC, ERANGE, EVERSION, EINVAL)
SHA = "ab" * 32

# Valid frames of most kinds a peer may send: the seeds of the mutants and
# the whole frames whose prefixes are the truncations.
VALID = [
    {"k": "status"},
    {"k": "status", "grid": "g"},
    {"k": "hello", "worker": "w-mutant", "threads": 4},
    {"k": "ready", "max": 8},
    {"k": "heartbeat", "job": 1, "attempt": 1, "epoch": 2, "step": 30},
    {"k": "progress", "job": 1, "attempt": 1, "epoch": 2, "loss": 0.5,
     "test_acc": 0.25, "images_per_s": 1000.0, "eta_s": 3.5},
    {"k": "ckpt_put", "job": 1, "attempt": 1, "epoch": 1, "offset": 0,
     "total": 8, "sha256": SHA, "data": b"12345678"},
    {"k": "ckpt_get", "sha256": SHA, "offset": 0},
    {"k": "result", "job": 1, "attempt": 1, "ok": True, "result": "{}"},
    {"k": "result", "job": 1, "attempt": 1, "ok": False, "error": "boom"},
    {"k": "release", "job": 1, "attempt": 1},
    {"k": "submit", "grid": "mut", "spec": sleep_grid(2), "force": False},
    {"k": "results", "grid": "g"},
    {"k": "curves", "grid": "g"},
    {"k": "workers"},
    {"k": "cancel_grid", "grid": "nosuch"},
    {"k": "retry", "grid": "nosuch"},
]


def frame(msg):
    m = {"v": 1}
    m.update(msg)
    return pack(m)


def nested(depth):
    """A status request whose unknown key holds arrays nested depth deep."""
    return b"\x83\xa1v\x01\xa1k\xa6status\xa1x" + b"\x91" * depth + b"\xc0"


def hand_made():
    """(what, frame, codes): each frame and the error it must get."""
    status = frame({"k": "status"})
    cases = [
        ("an empty frame", b"", ANY),
        ("0xc1 (never used in msgpack)", b"\xc1", ANY),
        ("0xc1 then garbage", b"\xc1" + bytes(range(256)) * 4, ANY),
        ("a msgpack int", pack(7), EFORMAT),
        ("a msgpack array", pack([1, "status"]), EFORMAT),
        ("a msgpack str", pack("status"), EFORMAT),
        ("a msgpack nil", b"\xc0", EFORMAT),
        ("a map and a trailing byte", status + b"\x00", EFORMAT),
        ("two maps in one frame", status + status, EFORMAT),
        ("no version", pack({"k": "status"}), EVERSION),
        ("version 0", frame({"v": 0, "k": "status"}), EVERSION),
        ("version 2", frame({"v": 2, "k": "status"}), EVERSION),
        ("version 2^32", frame({"v": 1 << 32, "k": "status"}), EVERSION),
        ("version 2^64-1", frame({"v": (1 << 64) - 1, "k": "status"}),
         EVERSION),
        ("version -1", frame({"v": -1, "k": "status"}), EVERSION),
        ("version '1'", frame({"v": "1", "k": "status"}), EVERSION),
        ("version 1.0", frame({"v": 1.0, "k": "status"}), EVERSION),
        ("version true", frame({"v": True, "k": "status"}), EVERSION),
        ("version nil", pack({"v": None, "k": "status"}), EVERSION),
        ("version [1]", frame({"v": [1], "k": "status"}), EVERSION),
        ("no kind", frame({}), EINVAL),
        ("kind ''", frame({"k": ""}), EINVAL),
        ("kind 'frobnicate'", frame({"k": "frobnicate"}), EINVAL),
        ("kind 'STATUS'", frame({"k": "STATUS"}), EINVAL),
        ("kind 'status\\0'", frame({"k": "status\0"}), EINVAL),
        ("a 10000-byte kind", frame({"k": "x" * 10000}), EINVAL),
        ("kind 7", frame({"k": 7}), EFORMAT),
        ("kind as bin", frame({"k": b"status"}), EFORMAT),
        ("kind 'ack' (not served)", frame({"k": "ack"}), EINVAL),
        ("kind 'welcome' (not served)",
         frame({"k": "welcome", "heartbeat_ms": 5}), EINVAL),
        ("kind 'no_job' (not served)",
         frame({"k": "no_job", "retry_ms": 5}), EINVAL),
        ("kind 'changed' (not served)", frame({"k": "changed", "count": 1}),
         EINVAL),
        ("a duplicate 'v'", b"\x83\xa1v\x01\xa1k\xa6status\xa1v\x01", EFORMAT),
        ("a duplicate 'k'", b"\x83\xa1v\x01\xa1k\xa6status\xa1k\xa4bye",
         EFORMAT),
        ("an int key", pack({1: 2, "v": 1, "k": "status"}), EFORMAT),
        ("a nil key", b"\x83\xc0\x01\xa1v\x01\xa1k\xa6status", EFORMAT),
        ("grid 5", frame({"k": "status", "grid": 5}), EFORMAT),
        ("max '3'", frame({"k": "ready", "max": "3"}), EFORMAT),
        ("job '1'", frame({"k": "heartbeat", "job": "1", "attempt": 1,
                           "epoch": 0, "step": 0}), EFORMAT),
        ("threads 1.5", frame({"k": "hello", "worker": "w", "threads": 1.5}),
         EFORMAT),
        ("force 1", frame({"k": "submit", "grid": "g", "spec": "x",
                           "force": 1}), EFORMAT),
        ("hello without threads", frame({"k": "hello", "worker": "w"}),
         EFORMAT),
        ("heartbeat without attempt",
         frame({"k": "heartbeat", "job": 1, "epoch": 0, "step": 0}), EFORMAT),
        ("result without ok", frame({"k": "result", "job": 1, "attempt": 1}),
         EFORMAT),
        ("max 257", frame({"k": "ready", "max": 257}), ERANGE),
        ("max -1", frame({"k": "ready", "max": -1}), ERANGE),
        ("threads 0", frame({"k": "hello", "worker": "w", "threads": 0}),
         ERANGE),
        ("threads 5000", frame({"k": "hello", "worker": "w",
                                "threads": 5000}), ERANGE),
        ("job 0", frame({"k": "heartbeat", "job": 0, "attempt": 1,
                         "epoch": 0, "step": 0}), ERANGE),
        ("job -5", frame({"k": "heartbeat", "job": -5, "attempt": 1,
                          "epoch": 0, "step": 0}), ERANGE),
        ("job 2^64-1", frame({"k": "release", "job": (1 << 64) - 1,
                              "attempt": 1}), ERANGE),
        ("attempt 10^6+1", frame({"k": "release", "job": 1,
                                  "attempt": 10 ** 6 + 1}), ERANGE),
        ("a 129-byte worker name",
         frame({"k": "hello", "worker": "w" * 129, "threads": 1}), ERANGE),
        ("a grid name with a NUL", frame({"k": "status", "grid": "g\0h"}),
         (ERANGE, EFORMAT)),
        ("total 2^34+1", frame({"k": "ckpt_put", "job": 1, "attempt": 1,
                                "epoch": 1, "offset": 0,
                                "total": (1 << 34) + 1, "sha256": SHA,
                                "data": b""}),
         # refused before anything is allocated: for its size, or (the
         # shared chunk path checks the lease first) for holding no lease
         (ERANGE, EPERM)),
        ("a chunk over 1 MiB", frame({"k": "ckpt_put", "job": 1,
                                      "attempt": 1, "epoch": 1, "offset": 0,
                                      "total": MAX_CHUNK_BYTES + 1,
                                      "sha256": SHA,
                                      "data": bytes(MAX_CHUNK_BYTES + 1)}),
         ERANGE),
        ("a chunk past its total", frame({"k": "ckpt_put", "job": 1,
                                          "attempt": 1, "epoch": 1,
                                          "offset": 4, "total": 8,
                                          "sha256": SHA, "data": b"12345"}),
         ERANGE),
        ("a sha256 not hex", frame({"k": "ckpt_get", "sha256": "z" * 64,
                                    "offset": 0}), (ERANGE, EFORMAT)),
        ("a sha256 in upper case", frame({"k": "ckpt_get",
                                          "sha256": SHA.upper(),
                                          "offset": 0}), (ERANGE, EFORMAT)),
        ("arrays nested 16 deep (17 levels)", nested(16), ERANGE),
        ("arrays nested 1000 deep", nested(1000), ERANGE),
        ("100,000 nested arrays, no map", b"\x91" * 100000 + b"\xc0", ANY),
        ("a value nested 100,000 deep", nested(100000), ERANGE),
        ("4097 objects", frame({"k": "status", "x": [None] * 4090}), ERANGE),
        ("5000 objects", frame({"k": "status", "x": [None] * 5000}), ERANGE),
        ("an array32 of 2^32-1 elements, none there", b"\xdd\xff\xff\xff\xff",
         ANY),
        ("a map32 of 2^32-1 pairs, none there", b"\xdf\xff\xff\xff\xff", ANY),
        ("a map claiming 2^32-1 pairs after v and k",
         b"\xdf\xff\xff\xff\xff\xa1v\x01\xa1k\xa6status", ANY),
        ("a str32 of 4 GiB, none there",
         b"\x83\xa1v\x01\xa1k\xa6status\xa1x\xdb\xff\xff\xff\xff", ANY),
        ("a bin32 of 4 GiB, none there",
         b"\x83\xa1v\x01\xa1k\xa6status\xa1x\xc6\xff\xff\xff\xff", ANY),
        ("an ext32 of 4 GiB, none there",
         b"\x83\xa1v\x01\xa1k\xa6status\xa1x\xc9\xff\xff\xff\xff\x01", ANY),
    ]
    # Every proper prefix of valid frames: a truncated message.
    for m in (VALID[5], VALID[6], VALID[11]):
        f = frame(m)
        for n in range(1, len(f)):
            cases.append((f"{m['k']} cut to {n} of {len(f)} bytes", f[:n],
                          ANY))
    return cases


def store_unchanged(c, before, after):
    now = c.q("select id, state, attempts, result from jobs order by id")
    check(now == before, f"the store's jobs changed after {after}: "
          f"{before} -> {now}")
    check(c.q1("select count(*) from grids") == 1,
          f"a grid was added after {after}")


def handmade(c):
    c.submit(sleep_grid(3), "g")
    before = c.q("select id, state, attempts, result from jobs order by id")
    check(len(before) == 3, f"3 jobs submitted, {len(before)} stored")
    p = c.peer("hostile-handmade")
    cases = hand_made()
    for what, f, codes in cases:
        p.expect_error(None, codes, what=what, raw=f)
    c.check_alive(f"{len(cases)} bad frames")
    # Multipart messages: a message is exactly one frame.
    status = frame({"k": "status"})
    for what, parts in (("two frames", [status, status]),
                        ("an empty delimiter and a frame", [b"", status]),
                        ("three frames", [status, b"x", status])):
        p.send_parts(parts)
        r = p.recv(what=f"reply to {what}")
        check(r["k"] == "error" and r.get("code") == EFORMAT,
              f"{what}: answered {r!r}, expected error TFQ_EFORMAT")
    # At the limits (16 levels, 4096 objects) a frame is served; unknown
    # keys are ignored.
    p.send_raw(nested(15))
    r = p.recv(what="the reply to a frame nested 16 levels deep")
    check(r["k"] == "status_reply", f"16 levels (the limit): {r!r}")
    p.send_raw(frame({"k": "status", "x": [None] * 4089}))
    r = p.recv(what="the reply to a frame of 4096 objects")
    check(r["k"] == "status_reply", f"4096 objects (the limit): {r!r}")
    r = p.expect({"k": "status", "zzz": [1, 2, 3]}, "status_reply")
    check(r.get("queued") == 3, f"status after the bad frames: {r!r}")
    store_unchanged(c, before, "the bad frames")
    r = c.run_tfq("status")
    check("3" in r.stdout, f"tfq status after the bad frames: {r.stdout}")
    print(f"# {len(cases) + 3} bad frames, each answered with its error")


def mutate(rng, f):
    f = bytearray(f)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        i = rng.randrange(len(f)) if f else 0
        if op == 0 and f:
            f[i] ^= 1 << rng.randrange(8)
        elif op == 1 and f:
            f[i] = rng.randrange(256)
        elif op == 2 and f:
            f[i] = rng.choice((0xc1, 0xc0, 0xdb, 0xdd, 0xdf, 0xc6, 0xc9, 0xd9,
                               0xcf, 0xd3, 0xcb, 0x9f, 0x8f, 0xff, 0x00, 0x7f))
        elif op == 3:
            f[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        elif op == 4 and len(f) > 1:
            del f[i:i + rng.randrange(1, 6)]
        elif op == 5 and f:
            del f[rng.randrange(len(f)):]
        elif op == 6 and f:
            j = rng.randrange(len(f))
            f[i:i] = f[min(i, j):max(i, j)][:64]
    return bytes(f)


def must_fail(f):
    """The error a mutant must get, by Python's own msgpack reading of it:
    EFORMAT/ETRUNC/ERANGE for what is not one msgpack map, EVERSION for a
    map without version 1; None where any answer (or none) is right."""
    try:
        m = msgpack.unpackb(f, raw=True, strict_map_key=False)
    except Exception:
        return (EFORMAT, ETRUNC, ERANGE)
    if not isinstance(m, dict):
        return (EFORMAT,)
    v = m.get(b"v")
    if b"v" in m and not (type(v) is int and v == 1) and \
            all(isinstance(k, bytes) for k in m):
        return (EVERSION, EFORMAT)
    return None


def mutants(c):
    c.submit(sleep_grid(3, sleep_ms=60000), "g")
    seed = int(os.environ.get("TFQ_MUTANT_SEED", "10"))
    count = int(os.environ.get("TFQ_MUTANTS", "2000"))
    rng = random.Random(seed)
    p = c.peer("hostile-mutants")
    errors = answered = silent = 0
    late = []  # submit answers, which may come behind later requests
    for i in range(count):
        f = mutate(rng, frame(rng.choice(VALID)))
        want = must_fail(f)
        p.send_raw(f)
        # A probe behind each mutant: the replies before its answer are
        # the mutant's (the coordinator answers one peer in order), but for
        # a submit's, which comes once its parse, run off the event loop,
        # is done: it may be an earlier mutant's.
        probe = f"probe-{i}"
        p.send({"k": "status", "grid": probe})
        replies = []
        while True:
            r = p.recv(what=f"the answer to probe {i} behind mutant "
                       f"{f[:48].hex()}")
            if r["k"] == "error" and probe in r.get("msg", "") and \
                    r.get("re") == "status":
                break
            if r["k"] == "submitted" or r.get("re") == "submit":
                late.append(r)
                continue
            replies.append(r)
        where = f"mutant {i} (seed {seed}) {f[:64].hex()}"
        if want is not None:
            check(len(replies) == 1, f"{where}: {len(replies)} replies "
                  f"({replies!r}), expected one error "
                  f"{'/'.join(code_name(x) for x in want)}")
            r = replies[0]
            check(r["k"] == "error" and r.get("code") in want,
                  f"{where}: answered {r!r}, expected error "
                  f"{'/'.join(code_name(x) for x in want)}")
        for r in replies:
            check(r["k"] != "error" or (isinstance(r.get("msg"), str) and
                                       r.get("code", 0) < 0),
                  f"{where}: an error without code or message: {r!r}")
        errors += sum(r["k"] == "error" for r in replies)
        answered += bool(replies)
        silent += not replies
    for r in late:
        check(r["k"] != "error" or (isinstance(r.get("msg"), str) and
                                   r.get("code", 0) < 0),
              f"a submit mutant's error without code or message: {r!r}")
    c.check_alive(f"{count} mutants")
    r = p.expect({"k": "status", "grid": "g"}, "status_reply")
    check(r.get("queued", 0) + r.get("running", 0) + r.get("failed", 0) +
          r.get("done", 0) == 3, f"grid g after the mutants: {r!r}")
    c.run_tfq("status")
    check(errors > count // 2, f"only {errors} of {count} mutants were "
          f"answered with an error")
    print(f"# {count} mutants (seed {seed}): {errors} errors, "
          f"{answered - errors} other replies, {silent} unanswered "
          f"(bye, error or a batch); the coordinator stayed up")


def oversized(c):
    p = c.peer("hostile-big")
    # Exactly the limit: a status padded with an unknown bin key is served.
    probe = 1 << 17  # long enough for a bin32 header, as the real pad has
    pad = MAX_FRAME_BYTES - len(frame({"k": "status", "pad": bytes(probe)})) \
        + probe
    f = frame({"k": "status", "pad": bytes(pad)})
    check(len(f) == MAX_FRAME_BYTES, f"built {len(f)} bytes, not the limit")
    p.send_raw(f)
    r = p.recv(what="the reply to a frame of exactly 4 MiB")
    check(r["k"] == "status_reply", f"a frame of exactly 4 MiB: {r!r}")
    # One byte over: refused with TFQ_ERANGE, naming the frame's size.
    f = frame({"k": "status", "pad": bytes(pad + 1)})
    r = p.expect_error(None, ERANGE, what="a frame of 4 MiB + 1 byte", raw=f)
    check(str(len(f)) in r["msg"], f"4 MiB + 1: the message does not say "
          f"the size: {r['msg']!r}")
    # 64 MiB: not read at all (the transport drops the connection before
    # allocating it): no answer, the coordinator's memory does not grow by
    # it, and the peer is served again once it has reconnected.
    rss = c.peak_rss_kib()
    p.send_raw(b"\x83\xa1v\x01\xa1k\xa6status\xa3pad\xc6\x04\x00\x00\x00" +
               bytes(64 << 20))
    got = []
    for attempt in range(60):
        p.send({"k": "status"})
        try:
            got.append(p.recv(1.0, "a reply after the 64 MiB frame"))
            break
        except Failure:
            c.check_alive("a 64 MiB frame")
    check(got and got[-1]["k"] == "status_reply",
          f"no status reply within 60 s after a 64 MiB frame: {got!r}")
    extra = p.nothing(0.5)
    check(all(r["k"] == "status_reply" for r in got + extra),
          f"a 64 MiB frame was answered (so read): {got + extra!r}")
    grown = c.peak_rss_kib() - rss
    check(grown < 16 << 10, f"the coordinator's peak memory grew by "
          f"{grown} KiB after a 64 MiB frame: it was read")
    print(f"# 4 MiB served, 4 MiB + 1 refused, 64 MiB dropped unread "
          f"(peak memory +{grown} KiB)")


if __name__ == "__main__":
    main({"bad_frames": handmade, "mutant_frames": mutants,
          "oversized_frames": oversized})
