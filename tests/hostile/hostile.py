"""Shared by the hostile-peer tests: a real `tfq coordinator` on a temporary
state directory and an ephemeral loopback port, DEALER peers that send
exact frames (any bytes, any routing id) and wait for the reply with a
deadline, and a read-only look into the coordinator's store.

A test script imports this module first: without python3-zmq or
python3-msgpack it exits 77 (skipped).  It then calls main(CASES) with its
cases; argv is CASE TFQ.
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import msgpack
    import zmq
except ImportError as ex:
    print(f"SKIP: {ex} (Debian: python3-zmq python3-msgpack)")
    sys.exit(77)

# common/err.h
EFORMAT, EVERSION, EMISMATCH, EINVAL, ERANGE, EPERM = -4, -6, -9, -10, -11, -14
ENOENT = -3
CODE_NAMES = {-1: "TFQ_ENOMEM", -2: "TFQ_EIO", -3: "TFQ_ENOENT",
              -4: "TFQ_EFORMAT", -5: "TFQ_EMAGIC", -6: "TFQ_EVERSION",
              -7: "TFQ_ETRUNC", -8: "TFQ_ECHECKSUM", -9: "TFQ_EMISMATCH",
              -10: "TFQ_EINVAL", -11: "TFQ_ERANGE", -12: "TFQ_ENOTSUP",
              -13: "TFQ_EINTR", -14: "TFQ_EPERM"}

# common/proto.h
MAX_FRAME_BYTES = 4 << 20
MAX_CHUNK_BYTES = 1 << 20

# Deadlines: for a machine many times slower than a developer's with every
# core busy.  They only say when to give up; the failure says what was
# awaited.
REPLY_S = 30.0
START_S = 60.0


class Failure(Exception):
    """A check that did not hold; its text says what was expected."""


class Skip(Exception):
    """What the case needs is not here (exit 77)."""


def check(cond, what):
    if not cond:
        raise Failure(what)


def code_name(code):
    return CODE_NAMES.get(code, str(code))


def pack(msg):
    """The msgpack frame of a dict (str keys and values as msgpack str,
    bytes as bin)."""
    return msgpack.packb(msg, use_bin_type=True)


def poll(seconds, cond, what):
    """Calls cond() every 0.05 s until it returns a true value, which is
    returned; fails saying what was awaited after `seconds` of wall time."""
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Failure(f"{what}: not within {seconds:g} s")
        time.sleep(0.05)


class Coordinator:
    """A real `tfq coordinator` process on DIR/st, bound to an ephemeral
    loopback port.  Its log is DIR/coord.log.  tmpfs_bytes: DIR/st is a
    tmpfs of that size (needs root: Skip without)."""

    def __init__(self, tfq, heartbeat_ms=250, args=(), tmpfs_bytes=None):
        self.tfq = tfq
        self.dir = tempfile.mkdtemp(prefix="tfq-hostile-")
        self.state = os.path.join(self.dir, "st")
        self.heartbeat_ms = heartbeat_ms
        self.args = list(args)
        self.log_path = os.path.join(self.dir, "coord.log")
        self.proc = None
        self.ctx = zmq.Context()
        self.peers = []
        self.workers = []
        self.mounted = False
        try:
            if tmpfs_bytes is not None:
                self.mount_tmpfs(tmpfs_bytes)
            self.start()
        except BaseException:
            self.close()
            raise

    def mount_tmpfs(self, size):
        os.mkdir(self.state)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                            "tfq-hostile", self.state],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount a tmpfs (root needed): "
                       f"{r.stderr.strip()}")
        self.mounted = True

    def start(self):
        endpoint = os.path.join(self.state, "endpoint")
        if os.path.exists(endpoint):
            os.unlink(endpoint)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.tfq, "coordinator", "--state", self.state,
             "--bind", "tcp://127.0.0.1:*",
             "--heartbeat-ms", str(self.heartbeat_ms)] + self.args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

        def ready():
            check(self.proc.poll() is None,
                  f"the coordinator exited {self.proc.returncode} at start: "
                  f"{self.log_tail()}")
            try:
                with open(endpoint) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return None
        self.endpoint = poll(START_S, ready, "the coordinator's endpoint file")
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self, after):
        check(self.alive(), f"the coordinator exited "
              f"{self.proc.returncode} after {after}: {self.log_tail()}")

    def stop(self):
        """SIGTERM, then SIGKILL if it has not gone within the deadline."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(REPLY_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        for p in self.peers:
            p.close()
        self.peers = []
        for w in self.workers:
            if w.poll() is None:
                w.kill()
            w.wait()
        self.stop()
        self.ctx.term()
        if self.mounted:
            if subprocess.run(["umount", self.state]).returncode != 0:
                subprocess.run(["umount", "-l", self.state])
        shutil.rmtree(self.dir, ignore_errors=True)

    def worker(self, name, *args):
        """Starts a real `tfq worker` called name; its log is DIR/NAME.log."""
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        w = subprocess.Popen([self.tfq, "worker", "--connect", self.endpoint,
                              "--name", name] + list(args),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.workers.append(w)
        return w

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n--- coord.log\n" + "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def peak_rss_kib(self):
        """The coordinator's peak resident memory (VmHWM), in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    # ---- the store, read-only ------------------------------------------------

    def q(self, sql, args=()):
        """The rows of a query on STATE/tfq.db, opened read-only."""
        db = sqlite3.connect(f"file:{self.state}/tfq.db?mode=ro", uri=True,
                             timeout=REPLY_S)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def q1(self, sql, args=()):
        """The first column of the first row, or None."""
        rows = self.q(sql, args)
        return rows[0][0] if rows else None

    # ---- peers and the real client ------------------------------------------

    def peer(self, routing_id=None, endpoint=None):
        p = Peer(self.ctx, endpoint or self.endpoint, routing_id)
        self.peers.append(p)
        return p

    def run_tfq(self, *args, check_rc=True):
        """Runs `tfq ARGS --connect ENDPOINT`; its CompletedProcess."""
        r = subprocess.run([self.tfq] + list(args) +
                           ["--connect", self.endpoint],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=REPLY_S * 4)
        check(not check_rc or r.returncode == 0,
              f"tfq {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def submit(self, text, grid, name="grid.txt"):
        """Submits a job or grid file with the real `tfq submit`."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return self.run_tfq("submit", path, "--as", grid)


class Timeout(Failure):
    pass


class Peer:
    """A DEALER socket with a chosen routing id (bytes or str; None: one
    chosen by ZeroMQ)."""

    def __init__(self, ctx, endpoint, routing_id=None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            if isinstance(routing_id, str):
                routing_id = routing_id.encode()
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        self.name = routing_id
        self.sock.connect(endpoint)

    def close(self):
        if not self.sock.closed:
            self.sock.close(0)

    def send_raw(self, frame):
        self.sock.send(frame, copy=False)

    def send_parts(self, frames):
        self.sock.send_multipart(frames)

    def send(self, msg):
        """Sends a dict as one msgpack frame; v = 1 unless the dict has a
        'v' (None: no 'v' at all)."""
        m = {"v": 1}
        m.update(msg)
        if m["v"] is None:
            del m["v"]
        self.send_raw(pack(m))

    def recv(self, timeout_s=REPLY_S, what="a reply"):
        """The next reply decoded (a dict), or Timeout naming `what`."""
        if not self.sock.poll(int(timeout_s * 1000)):
            raise Timeout(f"no {what} within {timeout_s:g} s "
                          f"(peer {self.name!r})")
        frames = self.sock.recv_multipart()
        check(len(frames) == 1, f"a reply of {len(frames)} frames, not one")
        # Messages echo what a peer sent, which need not be UTF-8.
        r = msgpack.unpackb(frames[0], raw=False, unicode_errors="replace")
        check(isinstance(r, dict) and r.get("v") == 1 and "k" in r,
              f"a reply that is not a v1 message: {r!r}")
        return r

    def nothing(self, timeout_s):
        """Whatever arrives within timeout_s (a list of decoded replies)."""
        got = []
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                return got
            got.append(self.recv(0.01))

    def request(self, msg, timeout_s=REPLY_S):
        self.send(msg)
        return self.recv(timeout_s, f"reply to {msg.get('k')!r}")

    def expect(self, msg, kind, timeout_s=REPLY_S):
        """Sends msg; its reply, which must be of `kind`."""
        r = self.request(msg, timeout_s)
        check(r["k"] == kind, f"{msg.get('k')!r} answered {r!r}, expected "
              f"{kind!r}")
        return r

    def expect_error(self, msg, code, what=None, raw=None):
        """Sends msg (or the raw frame); its reply must be `error` with
        code (one code or a tuple of them) and a message; returns it."""
        if raw is not None:
            self.send_raw(raw)
            r = self.recv(REPLY_S, f"reply to {what}")
        else:
            r = self.request(msg)
        what = what or repr(msg)
        codes = code if isinstance(code, tuple) else (code,)
        check(r["k"] == "error", f"{what}: answered {r!r}, expected error "
              f"{'/'.join(code_name(c) for c in codes)}")
        check(r.get("code") in codes,
              f"{what}: error {code_name(r.get('code'))} ({r.get('msg')!r}), "
              f"expected {'/'.join(code_name(c) for c in codes)}")
        check(isinstance(r.get("msg"), str) and r["msg"],
              f"{what}: an error without a message: {r!r}")
        return r

    # ---- a worker's side ----------------------------------------------------

    def hello(self, worker=None, threads=1):
        name = worker or (self.name.decode() if self.name else "hostile")
        return self.expect({"k": "hello", "worker": name,
                            "threads": threads}, "welcome")

    def ready(self, max_jobs=1):
        """Asks for up to max_jobs jobs: the list of `job` replies (empty
        for no_job)."""
        r = self.request({"k": "ready", "max": max_jobs})
        if r["k"] == "no_job":
            return []
        jobs = []
        while True:
            check(r["k"] == "job", f"ready answered {r!r}")
            jobs.append(r)
            if not r.get("more"):
                return jobs
            r = self.recv(REPLY_S, "the rest of a batch of jobs")


def lease_of(job):
    """What a message about a leased job carries: its job, attempt and,
    where the coordinator hands out lease tokens, the token."""
    m = {"job": job["job"], "attempt": job["attempt"]}
    if "lease" in job:
        m["lease"] = job["lease"]
    return m


def result_msg(job, result="{}", ok=True, **extra):
    m = {"k": "result", "ok": ok, **lease_of(job)}
    if ok:
        m["result"] = result
    else:
        m["error"] = result
    m.update(extra)
    return m


def sleep_grid(n, sleep_ms=0, prefix="j", extra=""):
    """A job file of n sleep jobs."""
    return "---\n".join(f"name = {prefix}{i}\nkind = sleep\n"
                        f"sleep_ms = {sleep_ms}\n{extra}" for i in range(n))


def main(cases):
    """argv: CASE TFQ.  Runs one case against a fresh coordinator; exit 0,
    1 (the check that failed, and the coordinator's log) or 77."""
    if len(sys.argv) != 3 or sys.argv[1] not in cases:
        print(f"usage: {sys.argv[0]} CASE TFQ; cases: {', '.join(cases)}",
              file=sys.stderr)
        sys.exit(2)
    name, tfq = sys.argv[1], os.path.realpath(sys.argv[2])
    fn, opts = cases[name] if isinstance(cases[name], tuple) \
        else (cases[name], {})
    # A timeout's SIGTERM still cleans up (processes, mounts).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"FAIL: {name}: "
                                                     f"terminated"))
    try:
        c = Coordinator(tfq, **opts)
    except Skip as s:
        print(f"SKIP: {name}: {s}")
        sys.exit(77)
    try:
        fn(c)
        c.check_alive(f"case {name}")
    except Skip as s:
        print(f"SKIP: {name}: {s}")
        sys.exit(77)
    except Failure as f:
        print(f"FAIL: {name}: {f}{c.log_tail()}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        print(f"FAIL: {name}: {traceback.format_exc()}{c.log_tail()}",
              file=sys.stderr)
        sys.exit(1)
    finally:
        c.close()
    print(f"PASS: {name}")
