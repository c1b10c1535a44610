#!/usr/bin/python3
"""Many and slow peers against the real coordinator: ~200 DEALERs at once
beside ~100 raw TCP connections that stall at every point of the ZMTP
handshake, and a raw socket that speaks ZMTP one byte at a time.  An honest
request is still answered while they hang on.

Usage: test_flood.py CASE TFQ
"""
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (REPLY_S, Failure, check, main, msgpack, pack,  # noqa: E402
                     sleep_grid)

DEALERS = 200
STALLED = 100


def zmtp_greeting(mechanism=b"NULL"):
    """A ZMTP 3.0 greeting (RFC 23): signature, version 3.0, mechanism,
    as-server 0, filler; 64 bytes."""
    return (b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" +
            mechanism.ljust(20, b"\0") + b"\x00" + bytes(31))


def zmtp_frame(body, command=False):
    flags = 0x04 if command else 0x00
    if len(body) > 255:
        return bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def zmtp_ready(socket_type=b"DEALER", identity=b""):
    """The READY command of the NULL mechanism, with its properties."""
    body = b"\x05READY"
    for name, value in ((b"Socket-Type", socket_type),
                        (b"Identity", identity)):
        body += bytes([len(name)]) + name + struct.pack(">I", len(value)) + \
            value
    return zmtp_frame(body, command=True)


def raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=REPLY_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_exact(s, n, what):
    data = b""
    while len(data) < n:
        try:
            got = s.recv(n - len(data))
        except socket.timeout:
            raise Failure(f"{what}: no data within {REPLY_S:g} s")
        check(got, f"{what}: the coordinator closed the connection after "
              f"{len(data)} of {n} bytes")
        data += got
    return data


def read_message(s, what):
    """The next ZMTP message frame's body (commands, such as READY, are
    skipped)."""
    while True:
        flags = read_exact(s, 1, what)[0]
        size = struct.unpack(">Q", read_exact(s, 8, what))[0] \
            if flags & 0x02 else read_exact(s, 1, what)[0]
        body = read_exact(s, size, what)
        if not flags & 0x04:
            check(not flags & 0x01, f"{what}: a multipart reply")
            return body


def stall_kinds(greeting, ready):
    """The ways a raw peer stalls: connected and silent; part of the
    signature; the whole greeting and no READY; half the READY; a greeting
    of another mechanism (CURVE, which a NULL server refuses); garbage."""
    return [
        b"",
        greeting[:5],
        greeting[:11],
        greeting,
        greeting + ready[:7],
        zmtp_greeting(b"CURVE"),
        b"GET / HTTP/1.1\r\nHost: x\r\n",
    ]


def honest_status(c, what):
    """The real client's status, and a fresh DEALER's: both answered."""
    t0 = time.monotonic()
    r = c.run_tfq("status", "--json")
    check('"queued"' in r.stdout, f"tfq status {what}: {r.stdout!r}")
    p = c.peer()
    r = p.expect({"k": "status"}, "status_reply")
    p.close()
    return time.monotonic() - t0


def many_peers(c):
    c.submit(sleep_grid(50, sleep_ms=60000), "g")
    greeting = zmtp_greeting()
    ready = zmtp_ready()
    kinds = stall_kinds(greeting, ready)
    stalled = []
    for i in range(STALLED):
        s = raw_connect(c.port)
        data = kinds[i % len(kinds)]
        if data:
            s.sendall(data)
        stalled.append(s)
    c.check_alive(f"{STALLED} stalled connections")
    took = honest_status(c, f"beside {STALLED} stalled connections")
    # 200 DEALERs at once, each with its own routing id: every one sends
    # its requests before any reply is read.
    peers = [c.peer(f"flood-{i}") for i in range(DEALERS)]
    for i, p in enumerate(peers):
        if i % 4 == 0:
            p.send({"k": "hello", "worker": f"flood-{i}", "threads": 1})
            p.send({"k": "ready", "max": 1})
        else:
            p.send({"k": "status"})
    for i, p in enumerate(peers):
        if i % 4 == 0:
            r = p.recv(what=f"welcome of flood-{i}")
            check(r["k"] == "welcome", f"flood-{i}: hello answered {r!r}")
            r = p.recv(what=f"job of flood-{i}")
            check(r["k"] == "job", f"flood-{i}: ready answered {r!r}")
            p.send({"k": "release", "job": r["job"], "attempt": r["attempt"],
                    **({"lease": r["lease"]} if "lease" in r else {})})
            r = p.recv(what=f"ack of flood-{i}'s release")
            check(r["k"] == "ack", f"flood-{i}: release answered {r!r}")
        else:
            r = p.recv(what=f"status of flood-{i}")
            check(r["k"] == "status_reply", f"flood-{i}: status answered "
                  f"{r!r}")
    c.check_alive(f"{DEALERS} DEALERs")
    took_busy = honest_status(c, f"beside {DEALERS} DEALERs and {STALLED} "
                              f"stalled connections")
    # The stalled connections are still open (nothing closed them from
    # here); an honest status is answered while they hang on.
    open_now = 0
    for s in stalled:
        s.setblocking(False)
        try:
            open_now += s.recv(1 << 16) != b""
        except BlockingIOError:
            open_now += 1
        except OSError:
            pass
    for p in peers:
        p.close()
    check(c.q1("select count(*) from jobs where state = 'ready'") == 50,
          f"jobs not ready after the flood: "
          f"{c.q('select state, count(*) from jobs group by 1')}")
    check(c.q1("select count(*) from attempts where state = 'released'") ==
          DEALERS // 4, "not every flood worker's release was recorded")
    for s in stalled:
        s.close()
    honest_status(c, "after the stalled connections closed")
    print(f"# {DEALERS} DEALERs answered; {open_now} of {STALLED} stalled "
          f"connections still open; an honest status took {took:.2f} s "
          f"beside them and {took_busy:.2f} s after the flood")


def slow_greeting(c):
    """A raw peer sends its greeting, READY and a status one byte at a time
    (5 ms apart); meanwhile a DEALER is served, and then the raw peer gets
    its answer."""
    s = raw_connect(c.port)
    request = zmtp_frame(pack({"v": 1, "k": "status"}))
    data = zmtp_greeting() + zmtp_ready(identity=b"slowpeer") + request
    honest = c.peer("honest")
    served_during = 0
    for i, b in enumerate(data):
        s.sendall(bytes([b]))
        time.sleep(0.005)
        if i in (5, 30, 70):  # inside the greeting, and inside READY
            honest.expect({"k": "status"}, "status_reply")
            served_during += 1
    what = "the slow raw peer's reply"
    greeting = read_exact(s, 64, f"{what} (the coordinator's greeting)")
    check(greeting[0] == 0xff and greeting[9] == 0x7f and greeting[10] == 3,
          f"the coordinator's greeting is not ZMTP 3: {greeting.hex()}")
    check(greeting[12:16] == b"NULL", f"the coordinator's mechanism is "
          f"{greeting[12:32]!r}, not NULL")
    r = msgpack.unpackb(read_message(s, what), raw=False)
    check(r.get("k") == "status_reply", f"the slow raw peer got {r!r}")
    s.close()
    print(f"# {len(data)} bytes sent one at a time; {served_during} honest "
          f"requests served meanwhile; the raw peer got status_reply")


if __name__ == "__main__":
    main({"many_peers": many_peers, "slow_greeting": slow_greeting})
