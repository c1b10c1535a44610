// tfq dashboard: the page of `tfq dashboard` (schema/HTTP.md).  Plain
// JavaScript, no library.  It polls the JSON API every POLL_MS and renders
// three hash routes: #/ (grids, workers, events), #/grid/G (a grid's jobs,
// Figures 2 and 3, Table 1) and #/job/J (a job's attempts, curves and
// events).  Every value reaches the DOM through textContent or
// setAttribute, never as markup; the CSP (script-src 'self') forbids
// inline script anyway.
'use strict';

const POLL_MS = 2000; /* the issue: never faster than once a second */
const TOKEN_KEY = 'tfq.token';
const SVG_NS = 'http://www.w3.org/2000/svg';
const STATES = ['pending', 'ready', 'running', 'succeeded', 'failed',
                'blocked', 'cancelled'];
const PER_PAGE = [50, 100, 200, 500];

/* ---- DOM helpers ------------------------------------------------------ */

// el('td', {class: 'n'}, 'text', child...): attributes through
// setAttribute, strings as text nodes, null children skipped.
function make(ns, tag, attrs, children) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {}))
    if (v !== null && v !== undefined && v !== false)
      e.setAttribute(k, String(v));
  for (const c of children)
    if (c !== null && c !== undefined)
      e.append(typeof c === 'object' ? c : String(c));
  return e;
}
const el = (tag, attrs, ...children) => make(null, tag, attrs, children);
const svg = (tag, attrs, ...children) => make(SVG_NS, tag, attrs, children);
const $ = (id) => document.getElementById(id);

/* ---- formats: as the CLI prints them (cli_duration, report.c) --------- */

function duration(seconds) {
  if (seconds === null || seconds === undefined || !(seconds < 1e15))
    return '-';
  const t = seconds > 0 ? Math.floor(seconds + 0.5) : 0;
  const two = (x) => String(x).padStart(2, '0');
  if (t >= 86400) return Math.floor(t / 86400) + 'd' + two(Math.floor(t / 3600) % 24) + 'h';
  if (t >= 3600) return Math.floor(t / 3600) + 'h' + two(Math.floor(t / 60) % 60) + 'm';
  if (t >= 60) return Math.floor(t / 60) + 'm' + two(t % 60) + 's';
  return t + 's';
}

let clockOffsetMs = 0; /* the server's now_ms - Date.now() */
const serverNow = () => Date.now() + clockOffsetMs;

function ago(ms) {
  if (ms === null || ms === undefined) return '-';
  return duration((serverNow() - ms) / 1000) + ' ago';
}

function fixed(x, digits = 4) {
  if (x === null || x === undefined) return '';
  return typeof x === 'number' ? x.toFixed(digits) : String(x);
}

function text(x) {
  return x === null || x === undefined ? '' : String(x);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

/* ---- the API ------------------------------------------------------------ */

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status; /* 0: no answer at all */
  }
}

// The token comes once in the fragment (#token=T or #/grid/G&token=T), is
// kept for the tab in sessionStorage and removed from the address bar.
function readToken() {
  const m = /(^#|[&?])token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[2]));
    const rest = location.hash.replace(m[0], m[1] === '#' ? '#' : '');
    history.replaceState(null, '', location.pathname + location.search +
                         (rest === '#' ? '#/' : rest));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function request(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? {Authorization: 'Bearer ' + token} : {};
  let r;
  try {
    r = await fetch(path, {headers, cache: 'no-store'});
  } catch (err) {
    throw new ApiError('the dashboard server does not answer', 0);
  }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try {
      const j = await r.json();
      if (j && j.error) msg = j.error;
    } catch (err) { /* not JSON: the status line says enough */ }
    throw new ApiError(msg, r.status);
  }
  return r;
}

const getJSON = async (path) => (await request(path)).json();

function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== '' && v !== null && v !== undefined && v !== false)
      q.set(k, v === true ? '1' : String(v));
  return path + '?' + q.toString();
}

// An image of the API as a data: URL (img-src allows 'self' and data:, and
// an <img src> could not send the token).  An SVG in an <img> runs no script.
async function imageURL(path) {
  const blob = await (await request(path)).blob();
  return new Promise((resolve, reject) => {
    const rd = new FileReader();
    rd.onload = () => resolve(rd.result);
    rd.onerror = () => reject(new ApiError('cannot read the image', -1));
    rd.readAsDataURL(blob);
  });
}

/* ---- the banner: coordinator or server unreachable ------------------- */

const outage = {since: null, what: null};

// what: "coordinator unreachable", "dashboard server unreachable", ...
function showOutage(what, why) {
  if (outage.since === null || outage.what !== what)
    outage.since = Date.now();
  outage.what = what;
  const b = $('banner');
  b.textContent = what + ' since ' + clock(outage.since) + ' (' +
      duration((Date.now() - outage.since) / 1000) + ')' +
      (why ? ': ' + why : '') + '; retrying every ' + POLL_MS / 1000 + ' s';
  b.hidden = false;
  $('conn').textContent = what;
  $('conn').className = 'conn down';
}

function clearOutage() {
  outage.since = null;
  const b = $('banner');
  b.hidden = true;
  b.textContent = '';
  $('conn').textContent = 'live';
  $('conn').className = 'conn up';
}

// A request of the view refused as bad or naming nothing (400, 404): said
// in the view, not in the banner; the service itself is fine.
function viewError(message) {
  clearOutage();
  const e = $('view-error');
  if (e) {
    e.hidden = false;
    e.textContent = message;
  }
}

/* ---- shared pieces ------------------------------------------------------ */

// A stacked bar of a grid's counts, as SVG rects (widths are attributes,
// so no style is set): done, failed, running, then the rest.
function progressBar(g) {
  const total = g.total || 0;
  const bar = svg('svg', {class: 'bar', viewBox: '0 0 100 10',
                          preserveAspectRatio: 'none', role: 'img',
                          'aria-label': text(g.done) + ' of ' + total + ' done'});
  bar.append(svg('rect', {class: 'bg', x: 0, y: 0, width: 100, height: 10}));
  let x = 0;
  for (const k of ['done', 'failed', 'blocked', 'cancelled', 'running']) {
    const w = total > 0 ? 100 * (g[k] || 0) / total : 0;
    if (w > 0)
      bar.append(svg('rect', {class: 'seg ' + k, x: x, y: 0, width: w, height: 10}));
    x += w;
  }
  return bar;
}

// A table with a header row; a header ending in '#' names a numeric column
// (right-aligned, as its cells).
function table(id, headers) {
  const tr = el('tr', {});
  for (const h of headers)
    tr.append(h.endsWith('#') ? el('th', {class: 'n'}, h.slice(0, -1)) : el('th', {}, h));
  return el('table', {id: id, class: 'data'}, el('thead', {}, tr), el('tbody', {}));
}

function fill(tbody, rows, empty, columns) {
  if (rows.length === 0) {
    tbody.replaceChildren(el('tr', {class: 'empty'},
                             el('td', {colspan: columns}, empty)));
    return;
  }
  tbody.replaceChildren(...rows);
}

function jobLink(id, name) {
  return el('a', {href: '#/job/' + id}, name !== undefined ? name : String(id));
}

function gridLink(grid) {
  return el('a', {href: '#/grid/' + encodeURIComponent(grid)}, grid);
}

function stateCell(state) {
  return el('td', {class: 'state ' + text(state)}, text(state));
}

const EVENT_HEADERS = ['when', 'kind', 'grid', 'job', 'attempt#', 'worker', 'detail'];

function eventRows(events) {
  return events.map((e) => el('tr', {'data-event': e.id, class: 'ev ' + text(e.kind)},
    el('td', {class: 'when', title: e.at_ms ? new Date(e.at_ms).toISOString() : null}, ago(e.at_ms)),
    el('td', {class: 'kind'}, text(e.kind)),
    el('td', {}, e.grid ? gridLink(e.grid) : ''),
    el('td', {}, e.job ? jobLink(e.job, text(e.name) || String(e.job)) : ''),
    el('td', {class: 'n'}, text(e.attempt)),
    el('td', {}, text(e.worker)),
    el('td', {class: 'detail'}, text(e.detail))));
}

function section(title, ...children) {
  return el('section', {}, el('h2', {}, title), ...children);
}

/* ---- #/ : grids, workers, events ----------------------------------- */

const GRID_HEADERS = ['grid', 'progress', 'done#', 'total#', 'queued#', 'running#',
                      'failed#', 'blocked#', 'cancelled#', 'metric'];

function homeView() {
  const grids = table('grids', GRID_HEADERS);
  const workers = table('workers', ['worker', 'host', 'threads#', 'running#',
                                    'done#', 'seen', 'state']);
  const events = table('events', EVENT_HEADERS);
  const err = el('p', {id: 'view-error', class: 'error-note', hidden: true});
  $('view').replaceChildren(err, section('Grids', grids), section('Workers', workers),
                            section('Recent events', events));
  return {
    async poll() {
      const [g, w, e] = await Promise.all([
        getJSON('/api/grids'), getJSON('/api/workers'),
        getJSON(query('/api/events', {count: 30}))]);
      fill(grids.tBodies[0], g.grids.map(gridRow), 'no grids yet', GRID_HEADERS.length);
      fill(workers.tBodies[0], w.workers.map(workerRow), 'no workers', 7);
      fill(events.tBodies[0], eventRows(e.events), 'no events', EVENT_HEADERS.length);
      err.hidden = true;
    },
  };
}

function gridRow(g) {
  const num = (k) => el('td', {class: 'n ' + k}, text(g[k]));
  return el('tr', {'data-grid': g.grid},
    el('td', {class: 'name'}, gridLink(g.grid)),
    el('td', {class: 'progress'}, progressBar(g)),
    num('done'), num('total'), num('queued'), num('running'), num('failed'),
    num('blocked'), num('cancelled'), el('td', {}, text(g.metric)));
}

function workerRow(w) {
  return el('tr', {'data-worker': w.worker},
    el('td', {}, text(w.worker)), el('td', {}, text(w.host)),
    el('td', {class: 'n'}, text(w.threads)), el('td', {class: 'n'}, text(w.running)),
    el('td', {class: 'n'}, text(w.done)),
    el('td', {class: 'when'}, w.seen_s_ago !== undefined && w.seen_s_ago !== null
      ? duration(w.seen_s_ago) + ' ago' : ago(w.last_seen_ms)),
    el('td', {class: 'wstate ' + text(w.state)}, text(w.state)));
}

/* ---- #/grid/G : counts, jobs, figures, Table 1 ------------------------- */

// Columns of the jobs table: [header, sort key or null, cell of a job,
// numeric (right-aligned)].
const JOB_COLUMNS = [
  ['job', 'job', (j) => el('td', {class: 'n'}, jobLink(j.job)), 1],
  ['name', 'name', (j) => el('td', {class: 'name'}, jobLink(j.job, text(j.name)))],
  ['state', 'state', (j) => stateCell(j.state)],
  ['split', 'split', (j) => el('td', {}, text(j.split))],
  ['sim', null, (j) => el('td', {}, text(j.similarity))],
  ['target', null, (j) => el('td', {}, text(j.target))],
  ['n', 'n', (j) => el('td', {class: 'n'}, text(j.n)), 1],
  ['variant', 'variant', (j) => el('td', {}, text(j.variant))],
  ['ft', null, (j) => el('td', {class: 'n'}, text(j.finetune)), 1],
  ['seed', null, (j) => el('td', {class: 'n'}, text(j.seed)), 1],
  ['worker', null, (j) => el('td', {}, text(j.worker))],
  ['att', 'attempts', (j) => el('td', {class: 'n'}, text(j.attempts)), 1],
  ['epoch', null, (j) => el('td', {class: 'n'}, text(j.epoch)), 1],
  ['acc', null, (j) => el('td', {class: 'n acc'}, fixed(j.acc)), 1],
  ['ETA', null, (j) => el('td', {class: 'n eta'},
                          j.state === 'running' ? duration(j.eta_s) : ''), 1],
  ['updated', 'updated', (j) => el('td', {class: 'when'}, ago(j.updated_ms))],
  ['error', null, (j) => el('td', {class: 'error', title: j.error || null}, text(j.error))],
];

function filterBar(q, changed) {
  const stateSel = el('select', {id: 'f-state', 'aria-label': 'state'},
                      el('option', {value: ''}, 'any state'));
  for (const s of STATES) stateSel.append(el('option', {value: s}, s));
  const box = (id, label, type) => el('input', {id: id, type: type || 'search',
    placeholder: label, 'aria-label': label, size: 14});
  const inputs = {state: stateSel, split: box('f-split', 'split'),
                  variant: box('f-variant', 'variant'),
                  n: box('f-n', 'n', 'number'), q: box('f-q', 'name contains')};
  inputs.n.setAttribute('min', '0');
  let timer = null;
  for (const [k, input] of Object.entries(inputs)) {
    input.value = q[k];
    input.addEventListener(k === 'state' ? 'change' : 'input', () => {
      clearTimeout(timer); /* type a word, then ask once */
      timer = setTimeout(() => {
        q[k] = input.value.trim();
        q.page = 1;
        changed();
      }, k === 'state' ? 0 : 300);
    });
  }
  return el('div', {class: 'filters'}, inputs.state, inputs.split,
            inputs.variant, inputs.n, inputs.q);
}

function pager(q, changed) {
  const prev = el('button', {type: 'button', id: 'prev'}, '\u2039 prev');
  const next = el('button', {type: 'button', id: 'next'}, 'next \u203a');
  const per = el('select', {id: 'per-page', 'aria-label': 'rows per page'});
  for (const n of PER_PAGE) per.append(el('option', {value: n}, n + ' per page'));
  per.value = String(q.per_page);
  prev.addEventListener('click', () => { if (q.page > 1) { q.page--; changed(); } });
  next.addEventListener('click', () => { q.page++; changed(); });
  per.addEventListener('change', () => {
    q.per_page = Number(per.value);
    q.page = 1;
    changed();
  });
  const showing = el('span', {id: 'showing', class: 'showing'});
  return {node: el('div', {class: 'pager'}, prev, next, per, showing),
          update(count) {
            const first = count === 0 ? 0 : (q.page - 1) * q.per_page + 1;
            const last = Math.min(count, q.page * q.per_page);
            showing.textContent = 'showing ' + first + '\u2013' + last + ' of ' + count;
            prev.disabled = q.page <= 1;
            next.disabled = last >= count;
          }};
}

function jobsHead(q, changed) {
  const tr = el('tr', {});
  for (const [label, key, , numeric] of JOB_COLUMNS) {
    const cls = (key ? 'sortable' : '') + (numeric ? ' n' : '');
    const th = el('th', key ? {'data-sort': key, class: cls, tabindex: 0}
                            : {class: cls || null}, label);
    if (key) {
      const pick = () => {
        q.desc = q.sort === key ? !q.desc : false;
        q.sort = key;
        q.page = 1;
        changed();
      };
      th.addEventListener('click', pick);
      th.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') pick(); });
    }
    tr.append(th);
  }
  return el('thead', {}, tr);
}

function markSort(thead, q) {
  for (const th of thead.querySelectorAll('th[data-sort]')) {
    const on = th.getAttribute('data-sort') === q.sort;
    th.classList.toggle('sorted', on);
    th.classList.toggle('desc', on && q.desc);
    th.setAttribute('aria-sort', on ? (q.desc ? 'descending' : 'ascending') : 'none');
  }
}

function figure(n, caption) {
  const img = el('img', {id: 'figure' + n, alt: 'Figure ' + n + ' of the grid',
                         class: 'figure', hidden: true});
  const note = el('p', {class: 'note', id: 'figure' + n + '-note'}, 'no finished runs yet');
  return {img, note, node: el('figure', {}, img, note, el('figcaption', {}, caption))};
}

function gridView(grid) {
  const q = {state: '', split: '', variant: '', n: '', q: '', sort: 'job',
             desc: false, page: 1, per_page: 100};
  const view = {grid, lastDone: null};
  const changed = () => kick();
  const counts = el('div', {id: 'grid-counts', class: 'counts'});
  const thead = jobsHead(q, changed);
  const jobs = el('table', {id: 'jobs', class: 'data jobs'}, thead, el('tbody', {}));
  const pg = pager(q, changed);
  const f2 = figure(2, 'Figure 2: accuracy against n, each variant (as tfq report draws it)');
  const f3 = figure(3, 'Figure 3: the transfer gain against n (as tfq report draws it)');
  const t1 = el('div', {id: 'table1-box'});
  const err = el('p', {id: 'view-error', class: 'error-note', hidden: true});
  $('view').replaceChildren(
    el('h2', {id: 'grid-title'}, 'grid ', el('span', {class: 'gname'}, grid)),
    err, counts,
    section('Jobs', filterBar(q, changed), el('div', {class: 'scroll'}, jobs), pg.node),
    section('Figures', el('div', {class: 'figures'}, f2.node, f3.node)),
    section('Table 1', t1));
  view.poll = async () => {
    const params = Object.assign({grid}, q);
    delete params.desc;
    if (q.desc) params.desc = 1;
    const [g, j] = await Promise.all([getJSON('/api/grids'),
                                      getJSON(query('/api/jobs', params))]);
    const row = g.grids.find((x) => x.grid === grid);
    err.hidden = row !== undefined;
    err.textContent = row === undefined ? 'no grid named \u201c' + grid + '\u201d' : '';
    counts.replaceChildren(...(row ? gridCounts(row) : []));
    markSort(thead, q);
    fill(jobs.tBodies[0], j.jobs.map(jobRow), 'no jobs match', JOB_COLUMNS.length);
    pg.update(j.count);
    if (row && row.done !== view.lastDone) {
      view.lastDone = row.done;
      refreshFigures(grid, [f2, f3], t1).catch((e) => {
        view.lastDone = null; /* try again on the next poll */
        f2.note.hidden = false;
        f2.note.textContent = 'figures: ' + e.message;
      });
    }
  };
  return view;
}

function gridCounts(row) {
  const parts = [progressBar(row)];
  for (const k of ['done', 'total', 'queued', 'running', 'failed', 'blocked', 'cancelled'])
    parts.push(el('span', {class: 'count ' + k}, el('b', {}, text(row[k])), ' ' + k));
  parts.push(el('span', {class: 'count'}, 'metric ', el('b', {}, text(row.metric))));
  return parts;
}

function jobRow(j) {
  return el('tr', {'data-job': j.job}, ...JOB_COLUMNS.map((c) => {
    const td = c[2](j);
    td.setAttribute('data-col', c[0]);
    return td;
  }));
}

// The figures and Table 1 again, each time the grid's done count changes.
// A 404 is a grid with no finished runs yet: the note says so.
async function refreshFigures(grid, figs, t1) {
  for (const [i, f] of figs.entries()) {
    const n = i + 2;
    try {
      /* fetch's cache: 'no-store' is the cache-buster: the API refuses
         parameters it does not know */
      const url = await imageURL(query('/api/figure', {grid, n}));
      f.img.src = url;
      f.img.hidden = false;
      f.note.hidden = true;
    } catch (err) {
      if (err.status !== 404) throw err;
      f.img.hidden = true;
      f.note.hidden = false;
      f.note.textContent = err.message || 'no finished runs yet';
    }
  }
  try {
    t1.replaceChildren(table1(await getJSON(query('/api/table1', {grid}))));
  } catch (err) {
    if (err.status !== 404) throw err;
    t1.replaceChildren(el('p', {class: 'note'}, err.message));
  }
}

function table1(r) {
  const t = table('table1', ['layers', 'versus', 'gain#', 'points#', 'missing']);
  const rows = (r.table1 || []).map((x) => el('tr', {},
    el('td', {}, x.lo + '\u2013' + x.hi), el('td', {}, text(x.versus)),
    el('td', {class: 'n'}, x.gain === null ? 'none'
                                          : (x.gain >= 0 ? '+' : '') + x.gain.toFixed(4)),
    el('td', {class: 'n'}, text(x.points)), el('td', {class: 'detail'}, text(x.missing))));
  fill(t.tBodies[0], rows, 'no lines', 5);
  const about = el('p', {class: 'note'},
    text(r.runs) + ' runs under metric ' + text(r.metric) + '; ' + text(r.unfinished) +
    ' unfinished, ' + text(r.no_value) + ' without a value, ' + text(r.no_base) +
    ' without a base; ' + (r.points || []).length + ' points');
  return el('div', {}, t, about);
}

/* ---- #/job/J : coordinates, attempts, curves, events ----------------- */

const JOB_FIELDS = [
  ['state', (j) => text(j.state)], ['grid', (j) => j.grid ? gridLink(j.grid) : ''],
  ['split', (j) => text(j.split)], ['similarity', (j) => text(j.similarity)],
  ['target', (j) => text(j.target)], ['n', (j) => text(j.n)],
  ['variant', (j) => text(j.variant)], ['finetune', (j) => text(j.finetune)],
  ['seed', (j) => text(j.seed)], ['attempts', (j) => text(j.attempts)],
  ['worker', (j) => text(j.worker)], ['epoch', (j) => text(j.epoch)],
  ['test acc', (j) => fixed(j.test_acc)], ['metric', (j) => text(j.metric)],
  ['acc', (j) => fixed(j.acc)],
  ['ETA', (j) => j.state === 'running' ? duration(j.eta_s) : '-'],
  ['updated', (j) => ago(j.updated_ms)], ['error', (j) => text(j.error)],
];

function jobView(id) {
  const title = el('h2', {id: 'job-title'}, 'job ' + id);
  const coords = el('dl', {id: 'job-coords', class: 'coords'});
  const attempts = table('attempts', ['attempt#', 'worker', 'state', 'started',
                                      'finished', 'heartbeat', 'error']);
  const loss = svg('svg', {id: 'curve-loss', class: 'chart'});
  const acc = svg('svg', {id: 'curve-acc', class: 'chart'});
  const events = table('events', EVENT_HEADERS);
  const err = el('p', {id: 'view-error', class: 'error-note', hidden: true});
  $('view').replaceChildren(title, err, coords, section('Attempts', attempts),
    section('Curves', el('div', {class: 'charts'},
      el('figure', {}, loss, el('figcaption', {}, 'training loss per epoch')),
      el('figure', {}, acc, el('figcaption', {}, 'test accuracy per epoch')))),
    section('Events', events));
  return {
    async poll() {
      let r;
      try {
        r = await getJSON(query('/api/job', {id}));
      } catch (e) {
        if (e.status !== 404 && e.status !== 400) throw e;
        err.hidden = false;
        err.textContent = e.message;
        return;
      }
      err.hidden = true;
      const j = r.job;
      title.replaceChildren('job ' + j.job + ': ', el('span', {class: 'jname'}, text(j.name)));
      coords.replaceChildren(...JOB_FIELDS.map(([k, f]) => el('div', {},
        el('dt', {}, k), el('dd', {class: k === 'state' ? 'state ' + text(j.state) : null}, f(j)))));
      fill(attempts.tBodies[0], r.attempts.map(attemptRow), 'no attempts yet', 7);
      const series = bySeries(r.curves);
      drawChart(loss, series, 'loss', 'loss');
      drawChart(acc, series, 'test_acc', 'test accuracy');
      fill(events.tBodies[0], eventRows(r.events), 'no events', EVENT_HEADERS.length);
    },
  };
}

function attemptRow(a) {
  return el('tr', {'data-attempt': a.attempt},
    el('td', {class: 'n'}, text(a.attempt)), el('td', {}, text(a.worker)),
    stateCell(a.state), el('td', {class: 'when'}, ago(a.started_ms)),
    el('td', {class: 'when'}, a.finished_ms ? ago(a.finished_ms) : '-'),
    el('td', {class: 'when'}, ago(a.heartbeat_ms)),
    el('td', {class: 'error'}, text(a.error)));
}

// curves -> [{attempt, points: [{epoch, loss, test_acc}] by epoch}].
function bySeries(curves) {
  const m = new Map();
  for (const c of curves || []) {
    if (!m.has(c.attempt)) m.set(c.attempt, []);
    m.get(c.attempt).push(c);
  }
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([attempt, pts]) =>
    ({attempt, points: pts.sort((a, b) => a.epoch - b.epoch)}));
}

/* ---- charts ---------------------------------------------------------- */

const CHART = {w: 560, h: 260, left: 58, right: 110, top: 14, bottom: 40};

// About `count` round ticks (1, 2 or 5 times a power of ten) over [lo, hi].
function ticks(lo, hi, count, integer) {
  const raw = (hi - lo) / count;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return {values: out, step};
}

function extent(series, key) {
  let lo = Infinity, hi = -Infinity, last = 1;
  for (const s of series)
    for (const p of s.points) {
      const v = p[key];
      if (typeof v !== 'number' || !isFinite(v)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      last = Math.max(last, p.epoch);
    }
  if (lo === Infinity) return null;
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; } /* a flat line still gets an axis */
  const pad = (hi - lo) * 0.05;
  return {lo: lo - pad, hi: hi + pad, epochs: last};
}

function drawAxes(g, sx, sy, xt, yt, yLabel) {
  const {w, h, left, right, top, bottom} = CHART;
  const x0 = left, x1 = w - right, y0 = h - bottom, y1 = top;
  g.append(svg('line', {class: 'axis', x1: x0, y1: y0, x2: x1, y2: y0}),
           svg('line', {class: 'axis', x1: x0, y1: y0, x2: x0, y2: y1}));
  for (const v of xt.values) {
    const x = sx(v);
    g.append(svg('line', {class: 'tick', x1: x, y1: y0, x2: x, y2: y0 + 5}),
             svg('text', {class: 'tick-label', x: x, y: y0 + 18, 'text-anchor': 'middle'}, String(v)));
  }
  const digits = Math.max(0, -Math.floor(Math.log10(yt.step) + 1e-9));
  for (const v of yt.values) {
    const y = sy(v);
    g.append(svg('line', {class: 'grid-line', x1: x0, y1: y, x2: x1, y2: y}),
             svg('line', {class: 'tick', x1: x0 - 5, y1: y, x2: x0, y2: y}),
             svg('text', {class: 'tick-label', x: x0 - 8, y: y + 4, 'text-anchor': 'end'},
                 v.toFixed(Math.min(digits, 6))));
  }
  g.append(svg('text', {class: 'axis-label', x: (x0 + x1) / 2, y: h - 6, 'text-anchor': 'middle'}, 'epoch'),
           svg('text', {class: 'axis-label', x: 14, y: (y0 + y1) / 2, 'text-anchor': 'middle',
                        transform: 'rotate(-90 14 ' + (y0 + y1) / 2 + ')'}, yLabel));
}

// One path per attempt (class "line", data-attempt, data-points) with a dot
// at each epoch, and a legend at the right.
function drawChart(node, series, key, yLabel) {
  const {w, h, left, right, top, bottom} = CHART;
  node.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
  node.setAttribute('role', 'img');
  node.setAttribute('aria-label', yLabel + ' per epoch');
  const e = extent(series, key);
  if (e === null) {
    node.replaceChildren(svg('text', {class: 'empty', x: w / 2, y: h / 2, 'text-anchor': 'middle'},
                             'no epochs yet'));
    return;
  }
  const xmax = Math.max(2, e.epochs);
  const sx = (v) => left + (v - 1) / (xmax - 1) * (w - left - right);
  const sy = (v) => h - bottom - (v - e.lo) / (e.hi - e.lo) * (h - top - bottom);
  const g = svg('g', {});
  drawAxes(g, sx, sy, ticks(1, xmax, Math.min(8, xmax - 1), true), ticks(e.lo, e.hi, 5, false), yLabel);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => typeof p[key] === 'number' && isFinite(p[key]));
    if (pts.length === 0) return;
    const d = pts.map((p, k) => (k ? 'L' : 'M') + sx(p.epoch).toFixed(1) + ',' +
                      sy(p[key]).toFixed(1)).join(' ');
    const c = 's' + (i % 6);
    g.append(svg('path', {class: 'line ' + c, d: d, 'data-attempt': s.attempt,
                          'data-points': pts.length}));
    for (const p of pts)
      g.append(svg('circle', {class: 'dot ' + c, cx: sx(p.epoch), cy: sy(p[key]), r: 2.5},
                   svg('title', {}, 'attempt ' + s.attempt + ', epoch ' + p.epoch + ': ' + fixed(p[key]))));
    const ly = top + 14 + 18 * i;
    g.append(svg('line', {class: 'line ' + c, x1: w - right + 12, y1: ly - 4, x2: w - right + 32, y2: ly - 4}),
             svg('text', {class: 'legend', x: w - right + 38, y: ly}, 'attempt ' + s.attempt));
  });
  node.replaceChildren(g);
}

/* ---- the router and the poll loop ----------------------------------- */

let current = null;   /* the view shown: {poll()} */
let generation = 0;   /* bumps on every route: a late answer is dropped */
let timer = null;

function route() {
  readToken();
  const h = location.hash.replace(/^#/, '');
  let m;
  if ((m = /^\/grid\/(.+)$/.exec(h)))
    current = gridView(decodeURIComponent(m[1]));
  else if ((m = /^\/job\/(\d+)$/.exec(h)))
    current = jobView(Number(m[1]));
  else
    current = homeView();
  generation++;
  kick();
}

// Polls now (after any poll under way) and then every POLL_MS.
function kick() {
  clearTimeout(timer);
  timer = setTimeout(tick, 0);
}

let busy = false;

async function tick() {
  if (busy) { /* one poll at a time: come back when it ends */
    timer = setTimeout(tick, 50);
    return;
  }
  busy = true;
  const gen = generation;
  try {
    const st = await getJSON('/api/status');
    clockOffsetMs = st.now_ms - Date.now();
    $('footer').textContent = 'tfq ' + text(st.version) + ' \u00b7 coordinator ' + text(st.endpoint);
    if (st.coordinator !== 'ok') {
      showOutage('coordinator unreachable', st.error);
    } else {
      if (gen === generation) await current.poll();
      clearOutage();
    }
  } catch (err) {
    if (err.status === 0) showOutage('dashboard server unreachable', err.message);
    else if (err.status >= 500) showOutage('coordinator unreachable', err.message);
    else if (err.status === 400 || err.status === 404) viewError(err.message);
    else showOutage('request refused (HTTP ' + err.status + ')', err.message);
  } finally {
    busy = false;
    clearTimeout(timer);
    timer = setTimeout(tick, POLL_MS);
  }
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', route);
