#!/usr/bin/python3
"""tfq dashboard against a real coordinator (tests/hostile/hostile.py) and
a real `tfq dashboard` process, over real HTTP on loopback
(schema/HTTP.md).  A DEALER peer plays a worker named
<script>alert(1)</script> whose job fails with the error
<img src=x onerror=alert(1)>; the API must hand both back JSON-escaped.

Cases:
  dash_api        every route's JSON shape and status codes, 400/404/405,
                  the security headers on every answer, HEAD, the page's
                  files, the one-second cache (the coordinator's own
                  request counters), the hostile strings escaped
  dash_report     /api/figure and /api/table1 of a grid whose train jobs
                  a peer finished: the SVG, and the same points as
                  `tfq report --json`
  dash_security   a listen address off loopback without a token and TLS
                  is refused (exit 2); a token: 401 without it or with a
                  wrong one, 200 with it; a short token file is refused
  dash_tls        HTTPS with a self-signed certificate (openssl), checked
                  against it; plain HTTP to it gets no answer
  dash_reconnect  the coordinator killed: /api/status says unreachable
                  within seconds, each answer quick; restarted on its
                  port: ok again, the dashboard not restarted
  dash_metrics    /metrics: the coordinator's text and the dashboard's own
                  counters; `promtool check metrics` when it is on PATH
  dash_curve      a CURVE coordinator with an allow-list of clients: the
                  dashboard with a listed key is served, one with a
                  stranger's key or none says unreachable, refused

Usage: test_dashboard_http.py CASE TFQ
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "hostile"))
import hostile  # noqa: E402  (exits 77 without python3-zmq/msgpack)
from hostile import Failure, Skip, check, poll, result_msg  # noqa: E402

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'none'")
EVIL_WORKER = "<script>alert(1)</script>"
EVIL_ERROR = "<img src=x onerror=alert(1)>"
# The sleep grid's name, and as a URL has it.
GRID = "<script>alert(2)</script>"
GQ = urllib.parse.quote(GRID, safe="")
START_S = 60.0


class Dashboard:
    """A real `tfq dashboard` on 127.0.0.1, port 0; its URL from
    --url-file; its log DIR/dashboard-N.log."""
    count = 0

    def __init__(self, c, *args, listen="127.0.0.1:0", wait=True):
        Dashboard.count += 1
        self.dir = c.dir
        self.url_file = os.path.join(c.dir, f"url-{Dashboard.count}")
        self.log_path = os.path.join(c.dir,
                                     f"dashboard-{Dashboard.count}.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [c.tfq, "dashboard", "--connect", c.endpoint, "--listen", listen,
             "--url-file", self.url_file] + list(args),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        c.workers.append(self.proc)  # killed by c.close()
        self.url = poll(START_S, self.read_url, "the dashboard's URL file") \
            if wait else None
        if self.url:
            self.tls = self.url.startswith("https:")
            hostport = self.url.split("//", 1)[1].rstrip("/")
            self.host, port = hostport.rsplit(":", 1)
            self.port = int(port)

    def read_url(self):
        check(self.proc.poll() is None, f"tfq dashboard exited "
              f"{self.proc.returncode}: {self.log()}")
        try:
            with open(self.url_file) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def request(self, path, method="GET", headers=None, cafile=None,
                timeout=30):
        """(status, headers as a dict of lower-case names, body bytes)."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=cafile)
            conn = http.client.HTTPSConnection(self.host, self.port,
                                               timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port,
                                              timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            conn.close()

    def get(self, path, want=200, **kw):
        """The JSON of a GET that must answer want, with every header the
        contract asks for."""
        status, h, body = self.request(path, **kw)
        check(status == want, f"GET {path}: {status}, expected {want}: "
              f"{body[:300]!r}")
        check_headers(path, h, api=True)
        check(h.get("content-type", "").startswith("application/json"),
              f"GET {path}: Content-Type {h.get('content-type')!r}")
        check(b"<" not in body and b">" not in body,
              f"GET {path}: '<' or '>' unescaped in the JSON: {body[:300]!r}")
        return json.loads(body)


def check_headers(path, h, api):
    check(h.get("content-security-policy") == CSP,
          f"{path}: CSP {h.get('content-security-policy')!r}")
    check(h.get("x-content-type-options") == "nosniff",
          f"{path}: X-Content-Type-Options "
          f"{h.get('x-content-type-options')!r}")
    check(h.get("referrer-policy") == "no-referrer",
          f"{path}: Referrer-Policy {h.get('referrer-policy')!r}")
    if api:
        check(h.get("cache-control") == "no-store",
              f"{path}: Cache-Control {h.get('cache-control')!r}")


def keys(obj, want, what):
    check(isinstance(obj, dict), f"{what}: not an object: {obj!r}")
    missing = [k for k in want if k not in obj]
    check(not missing, f"{what}: lacks {missing}: {obj!r}")


# ---- the grid the API cases read ------------------------------------------

NJOBS = 40


def evil_grid(c):
    """NJOBS sleep jobs in grid GRID; a peer named EVIL_WORKER leases one and
    fails it with EVIL_ERROR, leases another and holds it.  Returns (the
    failed job's id, the held one's, the peer)."""
    c.submit(hostile.sleep_grid(NJOBS, 600000, prefix="s",
                                 extra="max_attempts = 1\n"), GRID)
    w = c.peer(EVIL_WORKER)
    w.hello(EVIL_WORKER)
    failed = w.ready(1)[0]
    w.expect(result_msg(failed, EVIL_ERROR, ok=False), "ack")
    held = w.ready(1)[0]
    return failed["job"], held["job"], w


def coord_requests(c, kind):
    """The coordinator's count of requests of kind, asked directly (not
    through the dashboard's cache)."""
    text = c.peer().expect({"k": "metrics"}, "metrics_reply")["items"]
    for line in text.splitlines():
        if line.startswith(f'tfq_requests_total{{kind="{kind}"}} '):
            return float(line.split()[-1])
    return 0.0


def api_status_grids_workers(d):
    s = d.get("/api/status")
    keys(s, ["coordinator", "error", "endpoint", "version", "now_ms"],
         "/api/status")
    check(s["coordinator"] == "ok" and s["error"] is None, f"status {s}")
    check(isinstance(s["now_ms"], int) and
          abs(s["now_ms"] - time.time() * 1000) < 60000, f"now_ms {s}")
    g = d.get("/api/grids")["grids"]
    check(len(g) == 1, f"/api/grids: {g}")
    keys(g[0], ["grid", "grid_id", "metric", "queued", "running", "done",
                "failed", "blocked", "cancelled", "total"], "a grid")
    check(g[0]["grid"] == GRID and g[0]["total"] == NJOBS and
          g[0]["running"] == 1 and g[0]["failed"] == 1, f"the grid: {g[0]}")
    ws = d.get("/api/workers")["workers"]
    check(len(ws) == 1 and ws[0]["worker"] == EVIL_WORKER,
          f"/api/workers: {ws}")
    keys(ws[0], ["worker", "host", "threads", "running", "done",
                 "last_seen_ms", "state", "seen_s_ago"], "a worker")


def api_jobs(d, failed, held):
    j = d.get(f"/api/jobs?grid={GQ}&page=2&per_page=15")
    keys(j, ["grid", "page", "per_page", "count", "jobs"], "/api/jobs")
    check(j["grid"] == GRID and j["count"] == NJOBS and j["page"] == 2 and
          j["per_page"] == 15 and len(j["jobs"]) == 15,
          f"/api/jobs page 2: {dict(j, jobs='...')}")
    keys(j["jobs"][0], ["job", "grid", "name", "state", "attempts", "split",
                        "n", "variant", "metric", "result", "error", "worker",
                        "attempt", "epoch", "test_acc", "eta_s", "updated_ms",
                        "acc"], "a job")
    ids = [x["job"] for x in j["jobs"]]
    check(ids == sorted(ids), f"page 2 not in job order: {ids}")
    j = d.get(f"/api/jobs?grid={GQ}&sort=name&desc=true&per_page=3")
    names = [x["name"] for x in j["jobs"]]
    check(names == sorted(names, reverse=True) and names[0] == "s9",
          f"sort=name&desc=true: {names}")
    f = d.get(f"/api/jobs?grid={GQ}&state=failed")
    check(f["count"] == 1 and f["jobs"][0]["job"] == failed and
          f["jobs"][0]["error"] == EVIL_ERROR and
          f["jobs"][0]["acc"] is None, f"state=failed: {f}")
    r = d.get(f"/api/jobs?grid={GQ}&state=running")
    check(r["count"] == 1 and r["jobs"][0]["worker"] == EVIL_WORKER,
          f"state=running: {r}")
    q = d.get(f"/api/jobs?grid={GQ}&q=s3")
    check(q["count"] == 11 and all("s3" in x["name"] for x in q["jobs"]),
          f"q=s3: {q['count']} jobs")  # s3, s30 .. s39
    for bad in ["per_page=501", "page=0", "page=x", "desc=maybe", "n=-1",
                "sort=nonsense", "state=nonsense", f"grid={GQ}"]:
        d.get(f"/api/jobs?grid={GQ}&{bad}", want=400)
    d.get("/api/jobs", want=400)
    other = d.get(f"/api/jobs?grid={GQ}&per_page=15&page=2&t=12345")
    check(other["count"] == NJOBS and len(other["jobs"]) == 15,
          f"a parameter of no meaning is not passed over: {other}")
    d.get("/api/jobs?grid=nosuchgrid", want=404)


def api_job_events(d, failed, held):
    o = d.get(f"/api/job?id={failed}")
    keys(o, ["job", "attempts", "curves", "events"], "/api/job")
    check(o["job"]["job"] == failed and o["job"]["error"] == EVIL_ERROR,
          f"/api/job's job: {o['job']}")
    check(len(o["attempts"]) == 1 and
          o["attempts"][0]["worker"] == EVIL_WORKER and
          o["attempts"][0]["error"] == EVIL_ERROR, f"attempts {o['attempts']}")
    keys(o["attempts"][0], ["attempt", "worker", "state", "started_ms",
                            "finished_ms", "heartbeat_ms", "error"],
         "an attempt")
    check(o["curves"] == [], f"a sleep job's curves: {o['curves']}")
    check(len(o["events"]) >= 1 and
          all(e["job"] == failed for e in o["events"]),
          f"the job's events: {o['events']}")
    d.get("/api/job?id=999999", want=404)
    d.get("/api/job?id=abc", want=400)
    d.get("/api/job", want=400)
    ev = d.get("/api/events")["events"]
    check(len(ev) >= 2, f"/api/events: {ev}")
    keys(ev[0], ["id", "at_ms", "kind", "job", "name", "grid", "attempt",
                 "worker", "detail"], "an event")
    ids = [e["id"] for e in ev]
    check(ids == sorted(ids, reverse=True), f"events not newest first: {ids}")
    one = d.get("/api/events?count=1")["events"]
    check(len(one) == 1 and one[0]["id"] == ids[0], f"count=1: {one}")
    newer = d.get(f"/api/events?after={ids[0]}")["events"]
    check(newer == [], f"after the newest: {newer}")
    d.get("/api/events?count=0", want=400)


def api_errors_and_files(d):
    for path in ["/nope", "/api/nope", "/api", "/index.htm", "/../etc/passwd"]:
        d.get(path, want=404)
    for method in ["POST", "PUT", "DELETE", "PATCH"]:
        for path in ["/api/status", "/", "/nope"]:
            status, h, body = d.request(path, method=method)
            check(status == 405, f"{method} {path}: {status}")
            check_headers(f"{method} {path}", h, api=True)
            check(json.loads(body).get("error"), f"{method} {path}: {body}")
    status, h, body = d.request("/api/status", method="HEAD")
    check(status == 200 and body == b"", f"HEAD: {status} {body[:80]!r}")
    check_headers("HEAD /api/status", h, api=True)
    status, h, body = d.request("/")
    check(status == 200 and h.get("content-type") ==
          "text/html; charset=utf-8" and b"<" in body, f"/: {status} {h}")
    check_headers("/", h, api=False)
    page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "dashboard")
    types = {".html": "text/html", ".js": "text/javascript",
             ".css": "text/css"}
    for name in sorted(os.listdir(page)):
        ext = os.path.splitext(name)[1]
        if ext not in types:
            continue
        status, h, body = d.request("/" + name)
        with open(os.path.join(page, name), "rb") as f:
            want = f.read()
        check(status == 200 and body == want, f"/{name}: {status}, "
              f"{len(body)} bytes, not the file's {len(want)}")
        check(h.get("content-type", "").startswith(types[ext]),
              f"/{name}: Content-Type {h.get('content-type')!r}")
        check_headers("/" + name, h, api=False)


def api_cache(c, d):
    """20 answers of /api/grids: the coordinator is asked at most once a
    second, and at least once (the counter counts)."""
    time.sleep(1.1)  # what the checks before asked has expired
    before = coord_requests(c, "grids")
    t0 = time.monotonic()
    for _ in range(20):
        d.get("/api/grids")
    took = time.monotonic() - t0
    asked = coord_requests(c, "grids") - before
    check(1 <= asked <= int(took) + 2, f"20 /api/grids in {took:.2f} s "
          f"asked the coordinator {asked:g} times")
    print(f"# 20 /api/grids in {took:.2f} s: the coordinator asked "
          f"{asked:g} times")


def case_api(c):
    failed, held, w = evil_grid(c)
    d = Dashboard(c)
    api_status_grids_workers(d)
    api_jobs(d, failed, held)
    api_job_events(d, failed, held)
    api_errors_and_files(d)
    api_cache(c, d)
    d.get(f"/api/figure?grid={GQ}&n=2", want=404)
    d.get(f"/api/figure?grid={GQ}&n=5", want=400)
    d.get(f"/api/table1?grid={GQ}", want=404)


# ---- the report's routes --------------------------------------------------

FINGERPRINT = "ab" * 32
TINY = f"""name: tiny
dataset: {{kind: fashion-mnist, fingerprint: {FINGERPRINT}, limit_train: 600, limit_test: 200}}
train: {{epochs: 1}}
splits: {{random: [0]}}
directions: A->B
layers: 2
variants: [selffer, transfer]
finetune: both
seeds: [1, 2]
"""


def finish_all(c, w, grid):
    """Leases every job of grid and reports a result for each."""
    n = 0
    while True:
        jobs = w.ready(8)
        if not jobs:
            return n
        for job in jobs:
            acc = 0.5 + 0.01 * (job["job"] % 13)
            accs = [round(acc - 0.01 * (9 - e), 4) for e in range(10)]
            res = json.dumps({"final_acc": accs[-1], "best_acc": max(accs),
                              "topk_acc": sum(accs) / 10, "topk": 10,
                              "epochs": 10, "final_loss": 0.3,
                              "train_seconds": 1.5,
                              "data_fingerprint": FINGERPRINT, "accs": accs})
            w.expect(result_msg(job, res), "ack")
            n += 1


def case_report(c):
    c.submit(TINY, "tiny", name="tiny.yaml")
    w = c.peer("w1")
    w.hello("w1")
    n = finish_all(c, w, "tiny")
    check(n > 4, f"only {n} jobs in the tiny grid")
    d = Dashboard(c)
    for fig in (2, 3):
        status, h, body = d.request(f"/api/figure?grid=tiny&n={fig}")
        check(status == 200 and h.get("content-type") == "image/svg+xml",
              f"figure {fig}: {status} {h.get('content-type')}")
        check_headers(f"/api/figure n={fig}", h, api=True)
        check(body.startswith(b"<?xml") and b"<svg" in body and
              b"<script" not in body, f"figure {fig}: {body[:200]!r}")
    t = d.get("/api/table1?grid=tiny")
    keys(t, ["grid", "metric", "runs", "points", "table1"], "/api/table1")
    out = os.path.join(c.dir, "report")
    r = c.run_tfq("report", "tiny", "-o", out, "--json")
    want = json.loads(r.stdout)
    check(t["runs"] == n == want["runs"], f"runs {t['runs']}, {n} jobs, "
          f"tfq report {want['runs']}")
    check(t["points"] == want["points"] and t["table1"] == want["table1"],
          "the points or Table 1 differ from tfq report --json's")
    with open(os.path.join(out, "figure2.svg"), "rb") as f:
        status, _, body = d.request("/api/figure?grid=tiny&n=2")
        check(body == f.read(), "/api/figure n=2 is not tfq report's "
              "figure2.svg")


# ---- security -------------------------------------------------------------

def run_dashboard(c, *args):
    r = subprocess.run([c.tfq, "dashboard", "--connect", c.endpoint] +
                       list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


def case_security(c):
    token = os.path.join(c.dir, "token")
    with open(token, "w") as f:
        f.write("0123456789abcdef0123456789abcdef\n")
    for args in (["--listen", "0.0.0.0:0"],
                 ["--listen", "0.0.0.0:0", "--token-file", token],
                 ["--listen", "[::]:0", "--token-file", token]):
        rc, err = run_dashboard(c, *args)
        check(rc == 2 and "not a loopback address" in err and
              "--token-file" in err and "--tls-cert" in err,
              f"{args}: exit {rc}, {err!r}")
    for args, say in ((["--listen", "127.0.0.1"], "HOST:PORT"),
                      (["--listen", "example.org:80"], "numeric"),
                      (["--listen", "127.0.0.1:99999"], "port"),
                      (["--tls-cert", token], "go together")):
        rc, err = run_dashboard(c, *args)
        check(rc == 2 and say in err, f"{args}: exit {rc}, {err!r}")
    short = os.path.join(c.dir, "short")
    with open(short, "w") as f:
        f.write("abc\n")
    rc, err = run_dashboard(c, "--listen", "127.0.0.1:0", "--token-file",
                            short)
    check(rc == 1 and "at least 16" in err, f"a short token: {rc} {err!r}")
    d = Dashboard(c, "--token-file", token)
    for hdr in ({}, {"Authorization": "Bearer wrong"},
                {"Authorization": "Bearer 0123456789abcdef0123456789abcdeF"},
                {"Authorization": "Bearer 0123456789abcdef0123456789abcdef0"},
                {"Authorization": "0123456789abcdef0123456789abcdef"}):
        for path in ("/api/status", "/", "/metrics", "/nope"):
            status, h, body = d.request(path, headers=hdr)
            check(status == 401, f"{path} with {hdr}: {status}")
            check(h.get("www-authenticate", "").startswith("Bearer"),
                  f"{path}: 401 without WWW-Authenticate")
            check_headers(path, h, api=True)
    good = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
    s = d.get("/api/status", headers=good)
    check(s["coordinator"] == "ok", f"with the token: {s}")
    status, _, _ = d.request("/", headers=good)
    check(status == 200, f"/ with the token: {status}")


def case_tls(c):
    if shutil.which("openssl") is None:
        raise Skip("no openssl to make a certificate (Debian: openssl)")
    cert, key = (os.path.join(c.dir, n) for n in ("cert.pem", "key.pem"))
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"openssl: {r.stderr}")
    d = Dashboard(c, "--tls-cert", cert, "--tls-key", key)
    check(d.url.startswith("https://127.0.0.1:"), f"URL {d.url}")
    s = d.get("/api/status", cafile=cert)
    check(s["coordinator"] == "ok", f"over TLS: {s}")
    try:
        d.request("/api/status")  # the system's CAs: not ours
        raise Failure("a certificate of no CA was accepted")
    except ssl.SSLError:
        pass
    plain = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        plain.request("GET", "/api/status")
        got = plain.getresponse().status
    except (OSError, http.client.HTTPException):
        got = None
    check(got is None or got == 400, f"plain HTTP to the TLS port: {got}")
    rc, err = run_dashboard(c, "--listen", "127.0.0.1:0", "--tls-cert", key,
                            "--tls-key", cert)
    check(rc == 1 and "TLS" in err, f"certificate and key swapped: {rc} "
          f"{err!r}")


# ---- the coordinator away -------------------------------------------------

def status_of(d):
    t0 = time.monotonic()
    s = d.get("/api/status")
    took = time.monotonic() - t0
    check(took < 5, f"/api/status took {took:.1f} s")
    return s


def case_reconnect(c):
    d = Dashboard(c)
    check(status_of(d)["coordinator"] == "ok", "at start")
    port = c.port
    c.proc.kill()
    c.proc.wait()
    t0 = time.monotonic()
    s = poll(10, lambda: (lambda s: s if s["coordinator"] == "unreachable"
                          else None)(status_of(d)),
             "/api/status saying unreachable")
    print(f"# unreachable {time.monotonic() - t0:.1f} s after the kill: "
          f"{s['error']}")
    check(isinstance(s["error"], str) and s["error"], f"no error: {s}")
    d.get("/api/grids", want=503)
    c.args = ["--bind", f"tcp://127.0.0.1:{port}"]
    c.start()
    t0 = time.monotonic()
    poll(20, lambda: status_of(d)["coordinator"] == "ok",
         "/api/status ok again after the restart")
    print(f"# ok {time.monotonic() - t0:.1f} s after the restart")
    check(d.proc.poll() is None, "the dashboard exited")
    d.get("/api/grids")


def case_curve(c):
    """The dashboard is a client like any: under CURVE it needs a key the
    coordinator's allow-list holds (tfq's global --curve-key and
    --server-key)."""
    k = {}
    for name in ("server", "dash", "stranger"):
        k[name] = os.path.join(c.dir, name)
        r = subprocess.run([c.tfq, "keygen", "-o", k[name]],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"keygen {name}: {r.stderr}")
    allow = os.path.join(c.dir, "clients.list")
    shutil.copy(k["dash"] + ".pub", allow)
    c.stop()
    c.args = ["--curve-key", k["server"] + ".key", "--allow-clients", allow]
    c.start()
    server = ["--server-key", k["server"] + ".pub"]
    good = Dashboard(c, "--curve-key", k["dash"] + ".key", *server)
    s = status_of(good)
    check(s["coordinator"] == "ok", f"the allowed key: {s}")
    check(isinstance(good.get("/api/grids")["grids"], list), "grids")
    for who, args in (("a stranger's key",
                       ["--curve-key", k["stranger"] + ".key"] + server),
                      ("no key", [])):
        d = Dashboard(c, *args)
        s = poll(20, lambda: (lambda s: s if s["coordinator"] ==
                              "unreachable" else None)(status_of(d)),
                 f"/api/status with {who} saying unreachable")
        print(f"# {who}: {s['error']}")
        d.get("/api/grids", want=503)


# ---- /metrics -------------------------------------------------------------

def case_metrics(c):
    evil_grid(c)
    d = Dashboard(c)
    d.get("/api/status")
    d.get("/nope", want=404)
    status, h, body = d.request("/metrics")
    check(status == 200 and h.get("content-type", "").startswith(
        "text/plain; version=0.0.4"), f"/metrics: {status} {h}")
    check_headers("/metrics", h, api=True)
    text = body.decode()
    for want in ['tfq_jobs{grid="' + GRID + '",state="running"} 1',
                 "# TYPE tfq_dashboard_http_requests_total counter",
                 'tfq_dashboard_http_requests_total{route="/api/status",'
                 'code="200"} 1',
                 'tfq_dashboard_http_requests_total{route="other",'
                 'code="404"} 1',
                 "tfq_dashboard_coordinator_up 1"]:
        check(want in text, f"/metrics lacks {want!r}:\n{text}")
    promtool = shutil.which("promtool")
    if promtool is None:
        print("# promtool not on PATH: the format is not checked")
        return
    r = subprocess.run([promtool, "check", "metrics"], input=body,
                       capture_output=True)
    check(r.returncode == 0, f"promtool check metrics: "
          f"{r.stdout.decode()}{r.stderr.decode()}")
    print("# promtool check metrics: ok")


if __name__ == "__main__":
    hostile.main({"dash_api": case_api, "dash_report": case_report,
                  "dash_security": case_security, "dash_tls": case_tls,
                  "dash_reconnect": case_reconnect,
                  "dash_metrics": case_metrics, "dash_curve": case_curve})
