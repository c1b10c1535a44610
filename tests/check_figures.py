#!/usr/bin/env python3
"""Checks tfq report's figures independently of tfq (test_report.sh).

  check_figures.py svg FIGURE2 FIGURE3 TABLE_CSV GRID_JSON METRIC
      The SVGs' structure (two plot areas in Figure 2, one in Figure 3, the
      y labels, a marker per run, an interval per mean of two or more runs
      and none for one), every interval against mean +- t(0.975, runs - 1)
      * sd / sqrt(runs) recomputed here from the runs of GRID_JSON (Figure
      3: each divided by its base net), TABLE_CSV's ci95 columns against
      its mean, sd and runs, the drawn
      intervals against the axis ticks, and the per-series offsets.
  check_figures.py png PNG SVG SCALE
      PNG (a rendering of SVG at SCALE pixels per SVG unit) is a PNG of the
      SVG's size times SCALE, not blank, and dark where SVG's plot areas
      have their frames.

Prints "ok: ..." or "FAIL: ..." per check; exits 1 when one failed.  The
t quantile is found here by integrating Student's t density numerically,
not from a table.
"""
import csv
import json
import math
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

SVG = "{http://www.w3.org/2000/svg}"
failures = 0


def ok(msg):
    print("ok: " + msg)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


# ---- Student's t ------------------------------------------------------------

def t_pdf(t, df):
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
    return math.exp(c - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(t * t / df))


def t_cdf(x, df, steps=4000):
    """P(T <= x) for x >= 0, by Simpson's rule on 0..x."""
    h = x / steps
    s = t_pdf(0, df) + t_pdf(x, df)
    for i in range(1, steps):
        s += (4 if i % 2 else 2) * t_pdf(i * h, df)
    return 0.5 + s * h / 3


_quantiles = {}


def t975(df):
    if df not in _quantiles:
        lo, hi = 0.0, 64.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if t_cdf(mid, df) < 0.975:
                lo = mid
            else:
                hi = mid
        _quantiles[df] = (lo + hi) / 2
    return _quantiles[df]


def interval_of(m, sd, n):
    """(mean, lo, hi, n) of n runs of mean m and sample sd sd; lo and hi
    None for one run."""
    if n < 2:
        return m, None, None, n
    h = t975(n - 1) * sd / math.sqrt(n)
    return m, m - h, m + h, n


def interval(values):
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 \
        else 0.0
    return interval_of(m, sd, n)


# ---- the runs ---------------------------------------------------------------

def metric_value(result, metric):
    accs = result.get("accs") or []
    if not accs:
        key = {"final": "final_acc", "best": "best_acc"}.get(metric,
                                                            "topk_acc")
        return result.get(key)
    if metric == "final":
        return accs[-1]
    top = sorted(accs, reverse=True)
    k = 1 if metric == "best" else min(int(metric[3:]), len(top))
    return sum(top[:k]) / k


def load_runs(grid_json, metric):
    """[(job, value)]: the finished runs with grid coordinates."""
    runs = []
    for j in json.load(open(grid_json)):
        if (j.get("state") != "succeeded" or j.get("result") is None
                or j.get("split") is None):
            continue
        v = metric_value(j["result"], metric)
        if v is not None:
            runs.append((j, v))
    return runs


FIGURE2_SERIES = {("base", 0): "base", ("selffer", 0): "selffer BnB",
                  ("selffer", 1): "selffer+ BnB+",
                  ("transfer", 0): "transfer AnB",
                  ("transfer", 1): "transfer+ AnB+"}


def figure2_expected(grid_json, metric):
    """{(series label, n): (mean, lo, hi, runs)} as Figure 2 should show
    them: the runs of the random splits."""
    out = {}
    for j, v in load_runs(grid_json, metric):
        label = FIGURE2_SERIES.get((j["variant"], j["finetune"] or 0))
        if label is not None and j["similarity"] == "random":
            n = 0 if j["variant"] == "base" else j["n"]
            out.setdefault((label, n), []).append(v)
    return {k: interval(v) for k, v in out.items()}


def figure3_expected(grid_json, metric):
    """{(series label, n): (mean, lo, hi, runs)} as Figure 3 should show
    them; the control's label is None."""
    runs = load_runs(grid_json, metric)
    base = {(j["split"], j["target"], j["seed"]): v for j, v in runs
            if j["variant"] == "base"}
    control_random = any(j["variant"] == "random" and not j["finetune"]
                         and j["similarity"] == "random" for j, _ in runs)
    out = {}
    for j, v in runs:
        if j["finetune"] or j["variant"] not in ("transfer", "random"):
            continue
        b = base.get((j["split"], j["target"], j["seed"]))
        if b is None:
            continue
        if j["variant"] == "transfer":
            label = "transfer AnB, " + ("random splits"
                                        if j["similarity"] == "random"
                                        else "dissimilar split")
        elif control_random and j["similarity"] != "random":
            continue
        else:
            label = None  # the control: its label is the figure's
        out.setdefault((label, j["n"]), []).append(v / b)
    return {k: interval(v) for k, v in out.items()}


# ---- the SVG ----------------------------------------------------------------

def panels(root):
    return [g for g in root.iter(SVG + "g") if g.get("class") == "panel"]


def tick_map(panel):
    """A function from a value to its pixel y, from the panel's y ticks."""
    ticks = sorted((float(t.get("data-value")), float(t.get("y")) - 4)
                   for t in panel.iter(SVG + "text")
                   if t.get("class") == "ytick")
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    return lambda v: y0 + (v - v0) * (y1 - y0) / (v1 - v0)


def means_of(panel):
    return [g for g in panel.iter(SVG + "g") if g.get("class") == "mean"]


def ci_line(g):
    for line in g.iter(SVG + "line"):
        if line.get("class") == "ci":
            return line
    return None


def check_means(name, panel, expected, label_of):
    """Every mean group of panel against expected[(label, x)] = (mean, lo,
    hi, runs)."""
    to_px = tick_map(panel)
    area = plot_areas(panel)[0]
    frame = (float(area.get("y")),
             float(area.get("y")) + float(area.get("height")))
    bad, seen, drawn, cut = [], set(), 0, 0
    xs = {}
    for g in means_of(panel):
        label, x = label_of(g.get("data-series")), int(g.get("data-x"))
        seen.add((label, x))
        if (label, x) not in expected:
            bad.append("unexpected mean %s n=%d" % (label, x))
            continue
        m, lo, hi, runs = expected[(label, x)]
        line = ci_line(g)
        if int(g.get("data-runs")) != runs or \
                abs(float(g.get("data-mean")) - m) > 2e-6:
            bad.append("%s n=%d: mean %s of %s runs, expected %.6f of %d" % (
                label, x, g.get("data-mean"), g.get("data-runs"), m, runs))
        if lo is None:
            if line is not None or g.get("data-lo") is not None:
                bad.append("%s n=%d: one run, but an interval" % (label, x))
            continue
        if line is None or g.get("data-lo") is None:
            bad.append("%s n=%d: %d runs, no interval" % (label, x, runs))
            continue
        tol = 1e-4 * abs(hi - lo) + 2e-6
        if abs(float(g.get("data-lo")) - lo) > tol or \
                abs(float(g.get("data-hi")) - hi) > tol:
            bad.append("%s n=%d: interval %s..%s, expected %.6f..%.6f" % (
                label, x, g.get("data-lo"), g.get("data-hi"), lo, hi))
        y_top, y_bottom = float(line.get("y1")), float(line.get("y2"))
        if line.get("data-cut") is not None:
            top, bottom = frame
            want_top = max(to_px(hi), top)
            want_bottom = min(to_px(lo), bottom)
            if abs(y_top - want_top) > 0.6 or \
                    abs(y_bottom - want_bottom) > 0.6 or \
                    (to_px(hi) >= top - 0.6 and to_px(lo) <= bottom + 0.6):
                bad.append("%s n=%d: cut from y %.1f to %.1f, expected "
                           "%.1f to %.1f at the frame" % (
                               label, x, y_top, y_bottom, want_top,
                               want_bottom))
            cut += 1
        elif (
                abs(y_top - to_px(hi)) > 0.6 or abs(y_bottom - to_px(lo)) > 0.6):
            bad.append("%s n=%d: drawn from y %.1f to %.1f, the axis puts "
                       "it at %.1f to %.1f" % (label, x, y_top, y_bottom,
                                               to_px(hi), to_px(lo)))
        drawn += 1
        xs.setdefault(x, []).append((label, float(line.get("x1"))))
    missing = set(expected) - seen
    if missing:
        bad.append("no mean drawn for %s" % sorted(missing, key=str)[:4])
    check(not bad and drawn > 0, "%s: %d intervals match the t-formula and "
          "the axis (%d cut at the frame)%s" % (
              name, drawn, cut, "" if not bad else ": " + "; ".join(bad[:6])))
    shared = {x: v for x, v in xs.items() if len(v) > 1}
    apart = all(len({round(px, 1) for _, px in v}) == len(v)
                for v in shared.values())
    check(shared and apart, "%s: series at the same n sit at different x "
          "(%d layers with several series)" % (name, len(shared)))


def plot_areas(root):
    return [r for r in root.iter(SVG + "rect")
            if r.get("class") == "plot-area"]


def ylabels(panel):
    return [" ".join(t.itertext()) for t in panel.iter(SVG + "text")
            if t.get("class") == "ylabel"]


def words(metric):
    if metric == "final":
        return "final evaluation"
    if metric in ("best", "top1"):
        return "best evaluation"
    return "mean of the %s best evaluations" % metric[3:]


def check_figure2(path, table_csv, grid_json, metric):
    root = ET.parse(path).getroot()
    ps = panels(root)
    if not check([p.get("data-panel") for p in ps] == ["runs", "means"],
                 "figure2: two panels, runs over means"):
        return
    areas = plot_areas(root)
    check(len(areas) == 2 and areas[0].get("x") == areas[1].get("x") and
          areas[0].get("width") == areas[1].get("width") and
          float(areas[0].get("y")) < float(areas[1].get("y")),
          "figure2: two plot areas, aligned, one above the other")
    for p in ps:
        label = " ".join(ylabels(p))
        check("top-1 accuracy" in label and words(metric) in label,
              "figure2 %s panel: y label '%s'" % (p.get("data-panel"), label))
    want = figure2_expected(grid_json, metric)
    bad = []
    for r in csv.DictReader(open(table_csv)):
        m, lo, hi, n = interval_of(float(r["mean"]), float(r["sd"] or 0),
                                   int(r["runs"]))
        got = (r["ci95_lo"], r["ci95_hi"])
        if (lo is None) != (got == ("", "")) or lo is not None and (
                abs(float(got[0]) - lo) > 1e-5 or
                abs(float(got[1]) - hi) > 1e-5):
            bad.append("%s/%s/%s/%s: %s..%s, expected %s..%s" % (
                r["similarity"], r["variant"], r["finetune"], r["n"],
                got[0], got[1], lo, hi))
    check(not bad, "table.csv: ci95_lo and ci95_hi are the t-interval of "
          "its mean, sd and runs" + ("" if not bad else ": " +
                                     "; ".join(bad[:4])))
    check_means("figure2 means panel", ps[1], want, lambda s: s)
    runs = sum(1 for e in ps[0].iter() if e.get("class") == "run")
    check(runs == sum(v[3] for v in want.values()),
          "figure2 runs panel: a marker per run (%d)" % runs)
    check(not any(e.get("class") == "run" for e in ps[1].iter()),
          "figure2 means panel: no run markers")


def check_figure3(path, grid_json, metric):
    root = ET.parse(path).getroot()
    ps = panels(root)
    if not check(len(ps) == 1 and len(plot_areas(root)) == 1,
                 "figure3: one panel"):
        return
    label = " ".join(ylabels(ps[0]))
    check("relative to the base net" in label and words(metric) in label,
          "figure3: y label '%s'" % label)
    want = figure3_expected(grid_json, metric)

    def label_of(series):
        return series if series.startswith("transfer AnB") else None
    check_means("figure3", ps[0], want, label_of)


# ---- PNG --------------------------------------------------------------------

def read_png(path):
    """(width, height, rows): rows of RGB(A) bytes, 8 bits a channel."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, head = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    w, h, depth, colour, _, _, interlace = head
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError("PNG of depth %d, colour type %d, interlace %d" %
                         (depth, colour, interlace))
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif f == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif f == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[i] = (row[i] + pr) & 255
        rows.append(row)
        prev = row
    return w, h, bpp, rows


def check_png(png, svg, scale):
    root = ET.parse(svg).getroot()
    want = (round(float(root.get("width")) * scale),
            round(float(root.get("height")) * scale))
    try:
        w, h, bpp, rows = read_png(png)
    except (OSError, ValueError, zlib.error, TypeError) as e:
        fail("%s: %s" % (png, e))
        return
    if not check((w, h) == want, "%s: %dx%d (expected %dx%d)" % (
            png, w, h, want[0], want[1])):
        return

    def dark(x, y):
        p = rows[y][x * bpp:x * bpp + 3]
        return sum(p) < 3 * 128

    def inked(row):
        return sum(1 for i in range(0, len(row), bpp) if row[i] < 200)
    ink = sum(inked(rows[y]) for y in range(0, h, 4)) * 4
    check(ink > 0.01 * w * h, "%s: not blank (%.1f%% of pixels inked)" % (
        png, 100.0 * ink / (w * h)))
    for i, r in enumerate(plot_areas(root)):
        x0, y0 = float(r.get("x")) * scale, float(r.get("y")) * scale
        x1 = x0 + float(r.get("width")) * scale
        y1 = y0 + float(r.get("height")) * scale
        ym, xm = int((y0 + y1) / 2), int((x0 + x1) / 2)
        near = range(-2, 3)
        frame = (any(dark(int(x0) + d, ym) for d in near) and
                 any(dark(int(x1) + d, ym) for d in near) and
                 any(dark(xm, int(y0) + d) for d in near) and
                 any(dark(xm, int(y1) + d) for d in near))
        inside = sum(inked(rows[y][int(x0 + 4) * bpp:int(x1 - 4) * bpp])
                     for y in range(int(y0 + 4), int(y1 - 4), 2))
        check(frame and inside > 50, "%s: plot area %d drawn (frame at "
              "%.0f,%.0f-%.0f,%.0f, %d inked pixels inside)" % (
                  png, i + 1, x0, y0, x1, y1, inside))


def main(argv):
    if len(argv) == 7 and argv[1] == "svg":
        check_figure2(argv[2], argv[4], argv[5], argv[6])
        check_figure3(argv[3], argv[5], argv[6])
    elif len(argv) == 5 and argv[1] == "png":
        check_png(argv[2], argv[3], float(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
