#!/usr/bin/python3
"""The dashboard in a real browser: Debian's chromium, driven over WebDriver
(chromium-driver, python3-selenium), loads the page of a real `tfq
dashboard` that reads a real coordinator while a real worker runs a grid.

It checks that the jobs table shows the grid's jobs; that a job's state
cell goes ready -> running -> succeeded with no reload (a marker set on the
window survives every step); that a grid named <script>...</script> and an
error text holding <img onerror=...> show as text and run nothing; that a
job's page draws its loss and accuracy curves with a point per epoch the
store holds; that Figure 2 loads as an image; that screenshots are not
blank; and that the banner says the coordinator is unreachable while it is
killed (kill -9) and goes away once it runs again on the same state.

If the browser cannot start, the test fails and says why.  Screenshots go
to $TFQ_SCREENSHOT_DIR when set, else into the test's temporary directory.
Usage: test_dashboard.py PATH-TO-TFQ
"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

XSS_GRID = '<script>window.__xss=1</script>'
XSS_DATA = '<img src=x onerror="window.__xss=2">'
SLOW_MS = 8000   # the job whose state is watched: 10 epochs over 8 s
EPOCHS = 3       # of the tiny grid's jobs
DATASET = '/usr/share/datasets/fashion-mnist'
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
# Deadlines for a machine many times slower than a developer's, both cores
# busy; they only say when to give up.
START_S = 120
TRAIN_S = 900
PAGE_S = 120


class Failure(Exception):
    pass


def fail(what):
    raise Failure(what)


def poll(cond, seconds, what, every=0.1):
    """Calls cond until it returns a true value, which it returns; fails
    saying `what` was not seen after `seconds`."""
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            fail('%s: not within %d s' % (what, seconds))
        time.sleep(every)


class Harness:
    def __init__(self, tfq):
        self.tfq = tfq
        self.dir = tempfile.mkdtemp(prefix='tfq-dashboard-')
        self.state = os.path.join(self.dir, 'st')
        self.procs = {}
        self.coord = None
        self.ep = None

    def log(self, name):
        return open(os.path.join(self.dir, name + '.log'), 'ab')

    def spawn(self, name, *args):
        p = subprocess.Popen([self.tfq] + list(args), stdin=subprocess.DEVNULL,
                             stdout=self.log(name), stderr=subprocess.STDOUT)
        self.procs.setdefault(name, []).append(p)
        return p

    def tfq_ok(self, *args):
        r = subprocess.run([self.tfq] + list(args), capture_output=True,
                           text=True, timeout=START_S)
        if r.returncode != 0:
            fail('tfq %s: exit %d: %s' % (' '.join(args), r.returncode,
                                          r.stderr.strip()))
        return r.stdout

    def start_coordinator(self, bind):
        """Starts the coordinator on the state; a restart on a fixed
        endpoint is tried again while the old one's port is not free."""
        def up():
            if self.coord is not None and self.coord.poll() is None:
                return os.path.exists(endpoint) and open(endpoint).read().strip()
            self.coord = self.spawn('coord', 'coordinator', '--state',
                                    self.state, '--bind', bind)
            return False
        endpoint = os.path.join(self.state, 'endpoint')
        if os.path.exists(endpoint):
            os.unlink(endpoint)
        self.ep = poll(up, START_S, 'the coordinator writes its endpoint')

    def q(self, sql, *args):
        db = sqlite3.connect('file:%s?mode=ro' % os.path.join(self.state, 'tfq.db'),
                             uri=True, timeout=5)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def close(self, keep):
        for ps in self.procs.values():
            for p in ps:
                if p.poll() is None:
                    p.kill()
                p.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tails(self):
        for f in sorted(os.listdir(self.dir)):
            if f.endswith('.log'):
                with open(os.path.join(self.dir, f), errors='replace') as fh:
                    lines = fh.readlines()[-20:]
                sys.stderr.write('--- %s\n%s' % (f, ''.join(lines)))


def browser(h):
    """A headless chromium over chromedriver, or a Failure saying why not."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        fail('python3-selenium is not importable (%s): apt-get install '
             'python3-selenium chromium chromium-driver' % e)
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            fail('%s is missing: apt-get install chromium chromium-driver' % path)
    home = os.path.join(h.dir, 'home')
    os.makedirs(home)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu',
              '--disable-dev-shm-usage', '--window-size=1400,1000',
              '--user-data-dir=' + os.path.join(h.dir, 'chrome')):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    env = dict(os.environ, HOME=home)
    service = Service(executable_path=CHROMEDRIVER, env=env,
                      log_path=os.path.join(h.dir, 'chromedriver.out'))
    try:
        return webdriver.Chrome(service=service, options=opts)
    except Exception as e:  # any reason is the message
        why = str(e).strip().splitlines()
        fail('chromium did not start under chromedriver: %s (its log: %s)'
             % (why[0] if why else repr(e),
                os.path.join(h.dir, 'chromedriver.out')))


def js(d, script, *args):
    return d.execute_script(script, *args)


def go(d, route):
    """Follows a hash route inside the page (no navigation)."""
    js(d, 'location.hash = arguments[0];', route)


ROWS = """
    const out = [];
    for (const tr of document.querySelectorAll('table#jobs tbody tr[data-job]')) {
      const r = {job: tr.getAttribute('data-job')};
      for (const td of tr.querySelectorAll('td[data-col]'))
        r[td.getAttribute('data-col')] = td.textContent;
      out.push(r);
    }
    return out;"""


def row_list(d):
    """The rows of table#jobs in order: {job, name, state, variant, ...}
    (the cells' text by column)."""
    return js(d, ROWS)


def rows(d):
    """{job id: row} of table#jobs."""
    return {r['job']: r for r in row_list(d)}


def check(cond, what):
    if not cond:
        fail(what)
    print('ok: ' + what, flush=True)


def not_blank(path, what):
    """The PNG has at least 16 distinct colours and no colour covers more
    than 97% of it: text, bars and lines were drawn."""
    from PIL import Image
    with Image.open(path) as im:
        px = im.convert('RGB')
        colours = px.getcolors(maxcolors=1 << 20) or []
        total = px.width * px.height
    top = max((c for c, _ in colours), default=total)
    check(len(colours) >= 16 and top < 0.97 * total,
          '%s is not blank (%d colours, the commonest on %.1f%%): %s'
          % (what, len(colours), 100.0 * top / total, path))


def screenshot(d, h, name, what):
    out = os.environ.get('TFQ_SCREENSHOT_DIR') or h.dir
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    check(d.save_screenshot(path), 'screenshot of %s saved' % what)
    not_blank(path, 'the screenshot of ' + what)


def xss_clean(d, where):
    got = js(d, 'return [typeof window.__xss, '
                'document.querySelectorAll("img[src=x], body script").length];')
    check(got == ['undefined', 0],
          'no script ran and no markup was made from data on %s (%s)' % (where, got))


def marker_kept(d, where):
    check(js(d, 'return window.__tfqMarker;') == 'kept',
          'no reload up to %s (the window marker survives)' % where)


def setup_queue(h):
    """The coordinator, a grid named XSS_GRID whose one job failed with
    XSS_DATA in its error (a worker whose data directory has that name),
    a grid 'plain' of sleep jobs and the tiny grid of train jobs."""
    h.start_coordinator('tcp://127.0.0.1:*')
    bad = h.write('bad.txt', 'name = nodata\nkind = train\ndataset = '
                  'fashion-mnist\nlimit_train = 100\nlimit_test = 100\n'
                  'max_attempts = 1\n')
    h.tfq_ok('submit', bad, '--as', XSS_GRID, '--connect', h.ep)
    nodata = os.path.join(h.dir, XSS_DATA)
    w = h.spawn('w-nodata', 'worker', '--connect', h.ep, '--name', 'w-nodata',
                '--data', nodata, '--exit-when-idle')
    poll(lambda: w.poll() is not None, START_S, 'the worker without data exits')
    err = h.q("select state, last_error from jobs where name = 'nodata'")
    check(err and err[0][0] == 'failed' and XSS_DATA in (err[0][1] or ''),
          'the job of grid %s failed with %s in its error' % (XSS_GRID, XSS_DATA))
    h.tfq_ok('submit', h.write('plain.txt',
             'name = slow\nkind = sleep\nsleep_ms = %d\n---\nname = fast\n'
             'kind = sleep\nsleep_ms = 100\nafter = slow\n' % SLOW_MS),
             '--as', 'plain', '--connect', h.ep)
    h.tfq_ok('submit', h.write('tiny.yaml', """name: tiny
dataset: {kind: fashion-mnist, limit_train: 300, limit_test: 100}
train: {epochs: %d}
splits: {random: [0]}
directions: A->B
layers: 1
variants: [selffer, transfer]
finetune: frozen
seeds: [1]
""" % EPOCHS), '--connect', h.ep)


def start_dashboard(h):
    url_file = os.path.join(h.dir, 'url')
    p = h.spawn('dashboard', 'dashboard', '--connect', h.ep, '--listen',
                '127.0.0.1:0', '--url-file', url_file)

    def url():
        if p.poll() is not None:
            fail('tfq dashboard exited %d' % p.returncode)
        return os.path.exists(url_file) and open(url_file).read().strip()
    u = poll(url, START_S, 'tfq dashboard writes its URL to --url-file')
    check(re.match(r'^http://127\.0\.0\.1:\d+/?$', u) is not None,
          'the dashboard listens on loopback: ' + u)
    return u.rstrip('/')


def watch_state_change(d, h):
    """#/grid/plain: 'slow' is ready, then a worker starts, and the same
    page shows it running, then succeeded."""
    go(d, '#/grid/plain')
    slow = str(h.q("select id from jobs where name = 'slow'")[0][0])
    r = poll(lambda: len(rows(d)) == 2 and rows(d), PAGE_S,
             "the jobs table shows grid plain's 2 jobs")
    check(r[slow]['state'] == 'ready' and r[slow]['name'] == 'slow',
          "job 'slow' shows as ready before any worker runs (%s)" % r[slow])
    h.spawn('w1', 'worker', '--connect', h.ep, '--name', 'w1')
    seen = ['ready']

    def state():
        s = rows(d).get(slow, {}).get('state')
        if s and s != seen[-1]:
            seen.append(s)
        return s == 'succeeded'
    poll(state, TRAIN_S, "job 'slow' shows as succeeded")
    check(seen == ['ready', 'running', 'succeeded'],
          "job 'slow''s state cell went %s" % ' -> '.join(seen))
    marker_kept(d, 'the state change')


def check_xss_grid(d, h):
    go(d, '#/')
    poll(lambda: js(d, "return [...document.querySelectorAll('#grids tr[data-grid]')]"
                       ".some(tr => tr.querySelector('td.name').textContent === arguments[0]);",
                    XSS_GRID), PAGE_S, 'the grids table lists %s as text' % XSS_GRID)
    xss_clean(d, 'the grids page')
    workers = poll(lambda: js(d, """const w = {};
        for (const tr of document.querySelectorAll('#workers tr[data-worker]'))
          w[tr.getAttribute('data-worker')] = tr.querySelector('td.wstate').textContent;
        return w['w1'] && w['w-nodata'] === 'gone' && w;"""), PAGE_S,
        'the workers table shows w1 and w-nodata gone')
    check(workers['w1'] in ('live', 'idle'), 'the workers table: %s' % workers)
    go(d, '#/grid/' + js(d, 'return encodeURIComponent(arguments[0]);', XSS_GRID))
    want = h.q("select id, last_error from jobs where name = 'nodata'")[0]
    r = poll(lambda: rows(d).get(str(want[0])), PAGE_S, 'the failed job of grid %s' % XSS_GRID)
    check(r['state'] == 'failed' and r['error'] == want[1],
          'its error cell holds the error text as text: %s' % r['error'])
    check(js(d, "return document.querySelector('#grid-title').textContent;") ==
          'grid ' + XSS_GRID, 'the grid title shows %s as text' % XSS_GRID)
    xss_clean(d, 'the grid page of ' + XSS_GRID)


def check_sort_filter(d, n):
    """Sorting by a header (the server's order, both ways) and a filter."""
    for desc in (False, True):
        js(d, "document.querySelector('table#jobs th[data-sort=name]').click();")
        want = 'descending' if desc else 'ascending'
        poll(lambda: js(d, "return document.querySelector('table#jobs th[data-sort=name]')"
                           ".getAttribute('aria-sort');") == want and
             [r['name'] for r in row_list(d)] ==
             sorted((r['name'] for r in row_list(d)), reverse=desc) and len(row_list(d)) == n,
             PAGE_S, 'the jobs sorted by name, %s' % want)
        print('ok: a click on "name" sorts the jobs by name, %s' % want, flush=True)
    js(d, """const i = document.getElementById('f-variant'); i.value = 'transfer';
             i.dispatchEvent(new Event('input'));""")
    got = poll(lambda: (lambda r: r and all(x['variant'] == 'transfer' for x in r) and
                        js(d, "return document.getElementById('showing').textContent;")
                        == 'showing 1\u2013%d of %d' % (len(r), len(r)) and r)(row_list(d)),
               PAGE_S, 'the variant filter shows only transfer jobs')
    check(0 < len(got) < n, 'the variant filter keeps %d of %d jobs' % (len(got), n))
    js(d, """const i = document.getElementById('f-variant'); i.value = '';
             i.dispatchEvent(new Event('input'));""")
    poll(lambda: len(row_list(d)) == n, PAGE_S, 'all %d jobs again without the filter' % n)


def check_tiny(d, h):
    """#/grid/tiny once the worker trained it: the jobs, Figure 2, Table 1;
    then a job's page and its curves."""
    go(d, '#/grid/tiny')
    n = len(h.q("select j.id from jobs j join grids g on g.id = j.grid_id where g.name = 'tiny'"))
    poll(lambda: (len(rows(d)) == n and all(r['state'] == 'succeeded' for r in row_list(d))),
         TRAIN_S, 'the jobs table shows the %d jobs of grid tiny succeeded' % n)
    print('ok: the jobs table shows grid tiny\'s %d jobs, succeeded' % n)
    w = poll(lambda: js(d, "const i = document.getElementById('figure2');"
                           "return i && i.complete && !i.hidden && i.naturalWidth;"),
             PAGE_S, 'img#figure2 loads')
    check(js(d, "return document.getElementById('figure2').src.startsWith('data:image/svg+xml');"),
          "Figure 2 is the API's SVG (%d px wide)" % w)
    lines = poll(lambda: js(d, "return document.querySelectorAll('#table1 tbody tr:not(.empty)').length;"),
                 PAGE_S, 'Table 1 has lines')
    print('ok: Table 1 shows %d lines' % lines, flush=True)
    check_sort_filter(d, n)
    screenshot(d, h, 'dashboard-grid.png', 'the grid page')
    job = min(int(k) for k in rows(d))
    js(d, "document.querySelector('table#jobs tr[data-job=\"' + arguments[0] + '\"] td.name a').click();", job)
    poll(lambda: js(d, 'return location.hash;') == '#/job/%d' % job, PAGE_S, 'the link opens #/job/%d' % job)
    name = h.q('select name from jobs where id = ?', job)[0][0]
    poll(lambda: js(d, "const t = document.getElementById('job-title');"
                       "return t && t.textContent;") == 'job %d: %s' % (job, name),
         PAGE_S, "job %d's page shows its name" % job)
    epochs = h.q('select count(*) from metrics where job_id = ? and attempt = '
                 '(select max(attempt) from metrics where job_id = ?)', job, job)[0][0]
    check(epochs == EPOCHS, 'the store holds %d epochs of job %d' % (epochs, job))
    for chart in ('curve-loss', 'curve-acc'):
        got = poll(lambda: js(d, "const p = document.querySelector('svg#' + arguments[0] + ' path.line');"
                                 "return p && [p.getAttribute('data-points'), p.getAttribute('d')];", chart),
                   PAGE_S, 'svg#%s draws a line' % chart)
        points = len(re.findall(r'[ML]\s*-?[\d.]+,-?[\d.]+', got[1]))
        check(got[0] == str(epochs) and points == epochs,
              'svg#%s has a path of %d points, one per epoch' % (chart, points))
    check(js(d, "return document.querySelectorAll('svg#curve-loss text.tick-label').length;") >= 4,
          'the loss chart has labelled ticks')
    poll(lambda: js(d, "return document.querySelectorAll('table#attempts tbody tr[data-attempt]').length;"),
         PAGE_S, "the job's attempts are listed")
    screenshot(d, h, 'dashboard-job.png', 'the job page')
    marker_kept(d, "the job's page")


def check_outage(d, h):
    fixed = h.ep
    h.coord.send_signal(signal.SIGKILL)
    h.coord.wait()
    banner = ("const b = document.getElementById('banner');"
              "return b.offsetParent !== null && !b.hidden ? b.textContent : '';")
    text = poll(lambda: js(d, banner), PAGE_S, 'the banner shows once the coordinator is killed')
    check('coordinator unreachable since' in text, 'the banner says: ' + text)
    h.start_coordinator(fixed)
    poll(lambda: js(d, banner) == '', PAGE_S,
         'the banner goes once the coordinator runs again on ' + fixed)
    print('ok: the banner went away after the restart', flush=True)
    marker_kept(d, 'the outage and the recovery')


def run(h):
    setup_queue(h)
    url = start_dashboard(h)
    d = browser(h)
    try:
        d.set_script_timeout(30)
        d.get(url + '/#/')
        poll(lambda: js(d, "return document.querySelectorAll('#grids tr[data-grid]').length;") == 3,
             PAGE_S, 'the grids page lists the 3 grids')
        js(d, "window.__tfqMarker = 'kept';")
        watch_state_change(d, h)
        check_xss_grid(d, h)
        check_tiny(d, h)
        check_outage(d, h)
        logs = [e['message'] for e in d.get_log('browser')]
        bad = [m for m in logs if 'Content Security Policy' in m or 'Uncaught' in m]
        check(not bad, 'the console has no CSP violation or uncaught error%s'
              % (': ' + '; '.join(bad) if bad else ''))
    finally:
        d.quit()


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: test_dashboard.py PATH-TO-TFQ')
    if not os.path.isdir(DATASET):
        sys.exit('FAIL: no Fashion-MNIST in %s (apt-get install '
                 'dataset-fashion-mnist): Figure 2 needs trained nets' % DATASET)
    h = Harness(os.path.realpath(sys.argv[1]))
    ok = False
    try:
        run(h)
        ok = True
    except Failure as e:
        print('FAIL: %s' % e, flush=True)
        h.tails()
    finally:
        h.close(keep=not ok)
    if not ok:
        print('the logs are kept in ' + h.dir)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
