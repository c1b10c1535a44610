#include "figure.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The canvas, in pixels: the panels on the left, stacked, the legend on
 * the right of the first. */
#define FIG_W 1000
#define PLOT_L 100 /* room for the tick labels and two rotated y label lines */
#define PLOT_R 640
#define PLOT_T 50  /* room for the title */
#define PANEL_H 380       /* a figure of one panel */
#define PANEL_TOP_H 360   /* the first of two */
#define PANEL_LOWER_H 280 /* the second */
#define PANEL_GAP 56      /* tick labels of the panel above, and air */
#define CAPTION_ROW 18
#define LEGEND_X 668
#define LEGEND_ROW 24
#define MARKER_R 4.5
#define TICK_PX 60 /* about one y tick per this many pixels */

/* Runs sit a little apart so that equal values do not hide each other:
 * the series at one x are shifted by figure.dodge each (centred on x), and
 * a series' runs spread over RUN_JITTER (in layers) by a golden-ratio
 * sequence, the same every time. */
#define DEFAULT_DODGE 0.16
#define RUN_JITTER 0.10
#define GOLDEN 0.6180339887498949
#define CAP_HALF 0.045 /* half-width of an interval's end caps, in layers */
#define BAR_HALF 0.075 /* half-width of the bar at a mean, in layers */

typedef struct {
    int top, bottom;  /* pixels */
    double ylo, yhi;  /* data range */
    double ystep;     /* between y ticks */
    int ydecimals;    /* of the y tick labels */
} box;

typedef struct {
    double xlo, xhi; /* data range of every panel */
    int xmax;        /* the largest x drawn */
    int height;      /* of the canvas */
    box panel[FIGURE_MAX_PANELS];
} layout;

void figure_init(figure *f, const char *title, const char *xlabel)
{
    memset(f, 0, sizeof *f);
    f->title = title;
    f->xlabel = xlabel;
    f->xmax = 7;
    f->dodge = DEFAULT_DODGE;
}

void figure_release(figure *f)
{
    for (int i = 0; i < f->nseries; i++)
        free(f->series[i].runs);
    memset(f, 0, sizeof *f);
}

figure_panel *figure_add_panel(figure *f, const char *name,
                               const char *ylabel, int runs, int intervals)
{
    if (f->npanels == FIGURE_MAX_PANELS)
        return NULL;
    figure_panel *p = &f->panels[f->npanels++];
    *p = (figure_panel){name, ylabel, runs, intervals};
    return p;
}

figure_series *figure_add_series(figure *f, const char *label,
                                 const char *fill, const char *stroke,
                                 figure_marker marker)
{
    if (f->nseries == FIGURE_MAX_SERIES)
        return NULL;
    figure_series *s = &f->series[f->nseries++];
    memset(s, 0, sizeof *s);
    snprintf(s->label, sizeof s->label, "%s", label);
    s->fill = fill;
    s->stroke = stroke;
    s->marker = marker;
    return s;
}

int figure_add_run(figure_series *s, double x, double y)
{
    if (s->nruns == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        figure_xy *r = realloc(s->runs, cap * sizeof *r);
        if (r == NULL)
            return TFQ_ENOMEM;
        s->runs = r;
        s->cap = cap;
    }
    s->runs[s->nruns++] = (figure_xy){x, y};
    return TFQ_OK;
}

static double px(const layout *l, double x)
{
    return PLOT_L + (x - l->xlo) / (l->xhi - l->xlo) * (PLOT_R - PLOT_L);
}

static double py(const box *b, double y)
{
    return b->bottom - (y - b->ylo) / (b->yhi - b->ylo) * (b->bottom - b->top);
}

/* Text content with the XML specials escaped. */
static void put_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
    }
}

/* The lines of s (split at '\n', at most two) as <tspan>s of one <text>
 * at x, the second line dy pixels below the first. */
static void put_lines(FILE *out, const char *s, double x, int dy)
{
    const char *nl = strchr(s, '\n');
    if (nl == NULL) {
        put_text(out, s);
        return;
    }
    char first[256];
    snprintf(first, sizeof first, "%.*s", (int)(nl - s), s);
    fprintf(out, "<tspan x=\"%.1f\">", x);
    put_text(out, first);
    fprintf(out, "</tspan><tspan x=\"%.1f\" dy=\"%d\">", x, dy);
    put_text(out, nl + 1);
    fprintf(out, "</tspan>");
}

/* b's y range: rounded ticks (1, 2 or 5 times a power of ten) about
 * TICK_PX apart that hold lo..hi with a margin, not past 1 or below 0
 * unless the data (dlo..dhi, within lo..hi) is. */
static void fit_range(box *b, double lo, double hi, double dlo, double dhi)
{
    if (!(lo <= hi)) {
        lo = dlo = 0;
        hi = dhi = 1;
    }
    double span = hi - lo;
    if (span < 1e-9)
        span = fmax(fabs(hi) * 0.1, 0.01);
    double plo = lo - 0.05 * span, phi = hi + 0.05 * span;
    double ticks = fmax(3, (b->bottom - b->top) / (double)TICK_PX);
    double raw = (phi - plo) / ticks, mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    b->ystep = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
    b->ylo = floor(plo / b->ystep + 1e-9) * b->ystep;
    b->yhi = ceil(phi / b->ystep - 1e-9) * b->ystep;
    if (dhi <= 1.0 && b->yhi > 1.0)
        b->yhi = fmax(1.0, b->ylo + b->ystep);
    if (dlo >= 0.0 && b->ylo < 0.0)
        b->ylo = 0.0;
    b->ydecimals = (int)fmax(0, ceil(-log10(b->ystep) - 1e-9));
}

/* The range panel p shows: its data (the runs, or else the means) and the
 * reference line, widened by each interval no wider than the data's span
 * on either side (a wider one would flatten the rest); a panel of means
 * shows no more than the runs span, so that it zooms.  What is left out
 * of an interval is cut at the frame (draw_mean). */
static void panel_range(const figure *f, const figure_panel *p, int xmax,
                        box *b)
{
    double lo = INFINITY, hi = -INFINITY, rlo = INFINITY, rhi = -INFINITY;
    for (int i = 0; i < f->nseries; i++) {
        const figure_series *s = &f->series[i];
        for (size_t r = 0; r < s->nruns; r++) {
            rlo = fmin(rlo, s->runs[r].y);
            rhi = fmax(rhi, s->runs[r].y);
        }
        for (int x = 0; !p->runs && x <= xmax; x++)
            if (s->means[x].runs > 0) {
                lo = fmin(lo, s->means[x].mean);
                hi = fmax(hi, s->means[x].mean);
            }
    }
    if (p->runs) {
        lo = rlo;
        hi = rhi;
    }
    if (f->has_ref && p->runs) {
        lo = fmin(lo, f->ref_y);
        hi = fmax(hi, f->ref_y);
    }
    double dlo = lo, dhi = hi, allow = fmax(hi - lo, 0.01);
    for (int i = 0; p->intervals && i < f->nseries; i++)
        for (int x = 0; x <= xmax; x++) {
            const figure_mean *m = &f->series[i].means[x];
            if (m->runs > 0 && !isnan(m->half) && m->half <= allow) {
                lo = fmin(lo, m->mean - m->half);
                hi = fmax(hi, m->mean + m->half);
            }
        }
    if (!p->runs) { /* zoomed: never wider than the runs */
        lo = fmax(lo, rlo);
        hi = fmin(hi, rhi);
    }
    fit_range(b, lo, hi, dlo, dhi);
}

static void fit_layout(const figure *f, layout *l)
{
    l->xmax = f->xmax < FIGURE_MAX_X ? f->xmax : FIGURE_MAX_X;
    l->xlo = -0.5;
    l->xhi = l->xmax + 0.5;
    int top = PLOT_T;
    for (int i = 0; i < f->npanels; i++) {
        int h = f->npanels == 1 ? PANEL_H
                : i == 0        ? PANEL_TOP_H
                                : PANEL_LOWER_H;
        l->panel[i].top = top;
        l->panel[i].bottom = top + h;
        panel_range(f, &f->panels[i], l->xmax, &l->panel[i]);
        top += h + PANEL_GAP;
    }
    int ncaption = 0;
    while (ncaption < FIGURE_MAX_CAPTION && f->caption[ncaption] != NULL)
        ncaption++;
    int last = f->npanels > 0 ? l->panel[f->npanels - 1].bottom : PLOT_T;
    l->height = last + 56 + ncaption * CAPTION_ROW + (ncaption ? 12 : 0);
}

/* A panel's grid, y ticks and their labels, x ticks, frame and y label. */
static void draw_axes(FILE *out, const figure_panel *p, const layout *l,
                      const box *b)
{
    int nticks = (int)lround((b->yhi - b->ylo) / b->ystep);
    for (int i = 0; i <= nticks; i++) {
        double v = b->ylo + i * b->ystep, y = py(b, v);
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#e0e0e0\"/>\n", PLOT_L, y, PLOT_R, y);
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#000000\"/>\n", PLOT_L - 5, y, PLOT_L, y);
        fprintf(out, "<text class=\"ytick\" data-value=\"%.*f\" x=\"%d\" "
                "y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", b->ydecimals,
                v, PLOT_L - 8, y + 4, b->ydecimals, v);
    }
    for (int x = 0; x <= l->xmax; x++) {
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                "stroke=\"#000000\"/>\n", px(l, x), b->bottom, px(l, x),
                b->bottom + 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d"
                "</text>\n", px(l, x), b->bottom + 19, x);
    }
    fprintf(out, "<rect class=\"plot-area\" x=\"%d\" y=\"%d\" width=\"%d\" "
            "height=\"%d\" fill=\"none\" stroke=\"#000000\"/>\n", PLOT_L,
            b->top, PLOT_R - PLOT_L, b->bottom - b->top);
    int two = strchr(p->ylabel, '\n') != NULL;
    fprintf(out, "<text class=\"ylabel\" transform=\"translate(%d %d) "
            "rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">",
            two ? 26 : 34, (b->top + b->bottom) / 2);
    put_lines(out, p->ylabel, 0, 17);
    fprintf(out, "</text>\n");
}

/* A marker of s's shape, about r pixels in radius. */
static void draw_marker(FILE *out, const char *cls, const figure_series *s,
                        double cx, double cy, double r, double opacity)
{
    fprintf(out, "<");
    switch (s->marker) {
    case FIGURE_CIRCLE:
        fprintf(out, "circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"", cx, cy, r);
        break;
    case FIGURE_SQUARE:
        fprintf(out, "rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                "height=\"%.1f\"", cx - r, cy - r, 2 * r, 2 * r);
        break;
    case FIGURE_DIAMOND:
        fprintf(out, "polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f "
                "%.1f,%.1f\"", cx, cy - 1.3 * r, cx + 1.3 * r, cy, cx,
                cy + 1.3 * r, cx - 1.3 * r, cy);
        break;
    case FIGURE_TRIANGLE_UP:
    case FIGURE_TRIANGLE_DOWN: {
        double d = s->marker == FIGURE_TRIANGLE_UP ? 1 : -1;
        fprintf(out, "polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"", cx,
                cy - d * 1.3 * r, cx + 1.2 * r, cy + d * 0.8 * r,
                cx - 1.2 * r, cy + d * 0.8 * r);
        break;
    }
    }
    fprintf(out, " class=\"%s\" fill=\"%s\" fill-opacity=\"%.2f\" "
            "stroke=\"%s\"/>\n", cls, s->fill, opacity, s->stroke);
}

/* Where series si sits at x: centred on x among the series that have
 * something there, figure.dodge apart. */
static double dodged(const figure *f, int si, int x)
{
    int rank = 0, count = 0;
    for (int i = 0; i < f->nseries; i++)
        if (f->series[i].means[x].runs > 0) {
            if (i < si)
                rank++;
            count++;
        }
    return x + (rank - (count - 1) / 2.0) * f->dodge;
}

/* The line through s's means, when it has more than one. */
static void draw_mean_line(FILE *out, const figure *f, int si,
                           const layout *l, const box *b, double width)
{
    const figure_series *s = &f->series[si];
    int have = 0;
    for (int x = 0; x <= l->xmax; x++)
        have += s->means[x].runs > 0;
    if (have < 2)
        return;
    fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
            "points=\"", s->stroke, width);
    for (int x = 0; x <= l->xmax; x++)
        if (s->means[x].runs > 0)
            fprintf(out, "%.1f,%.1f ", px(l, dodged(f, si, x)),
                    py(b, s->means[x].mean));
    fprintf(out, "\"/>\n");
}

/* A marker per run of series si, spread about its place at each x; pale
 * and small under intervals (pale). */
static void draw_runs(FILE *out, const figure *f, int si, const layout *l,
                      const box *b, int pale)
{
    const figure_series *s = &f->series[si];
    for (size_t i = 0; i < s->nruns; i++) {
        long x = lround(s->runs[i].x);
        if (x < 0 || x > l->xmax)
            continue;
        double g = (double)i * GOLDEN;
        double jitter = (g - floor(g) - 0.5) * RUN_JITTER;
        draw_marker(out, "run", s, px(l, dodged(f, si, (int)x) + jitter),
                    py(b, s->runs[i].y), pale ? 0.75 * MARKER_R : MARKER_R,
                    pale ? 0.35 : 0.85);
    }
}

/* Half the width of the bar that marks a mean among its runs, in pixels. */
static double bar_px(const layout *l)
{
    return BAR_HALF * (PLOT_R - PLOT_L) / (l->xhi - l->xlo);
}

/* A mean among its runs: a short thick horizontal bar at (cx, cy). */
static void draw_bar(FILE *out, const figure_series *s, double cx, double cy,
                     double half)
{
    fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
            "stroke=\"%s\" stroke-width=\"3\"/>\n", cx - half, cy,
            cx + half, cy, s->stroke);
}

/* An interval from pixel y1 (top) to y2 at cx: a vertical line with an end
 * cap cap pixels to each side, or an arrowhead at an end cut at the frame
 * (cut1, cut2). */
static void draw_interval(FILE *out, const figure_series *s, double cx,
                          double cap, double y1, double y2, int cut1, int cut2)
{
    fprintf(out, "<line class=\"ci\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
            "y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.6\"%s/>\n", cx, y1,
            cx, y2, s->stroke, cut1 || cut2 ? " data-cut=\"1\"" : "");
    double head = 1.5 * cap; /* an arrowhead, wider than a cap */
    for (int e = 0; e < 2; e++) {
        double y = e ? y2 : y1, d = e ? -1 : 1; /* d: into the interval */
        if (e ? cut2 : cut1)
            fprintf(out, "<polyline points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f\" "
                    "fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                    cx - head, y + d * head, cx, y, cx + head, y + d * head,
                    s->stroke);
        else
            fprintf(out, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
                    "y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.6\"/>\n",
                    cx - cap, y, cx + cap, y, s->stroke);
    }
}

/* One mean of series si at x as a <g class="mean">: its interval (a
 * vertical line with end caps) when it has one, then a marker (marker) or a
 * short bar. */
static void draw_mean(FILE *out, const figure *f, int si, int x,
                      const layout *l, const box *b, int marker)
{
    const figure_series *s = &f->series[si];
    const figure_mean *m = &s->means[x];
    double cx = px(l, dodged(f, si, x)), cy = py(b, m->mean);
    double cap = CAP_HALF * (PLOT_R - PLOT_L) / (l->xhi - l->xlo);
    fprintf(out, "<g class=\"mean\" data-series=\"");
    put_text(out, s->label);
    fprintf(out, "\" data-x=\"%d\" data-mean=\"%.6f\" data-runs=\"%d\"", x,
            m->mean, m->runs);
    int ci = !isnan(m->half);
    if (ci)
        fprintf(out, " data-lo=\"%.6f\" data-hi=\"%.6f\"", m->mean - m->half,
                m->mean + m->half);
    fprintf(out, "><title>");
    put_text(out, s->label);
    fprintf(out, ", n = %d: mean %.4f", x, m->mean);
    if (ci)
        fprintf(out, ", 95%% interval %.4f to %.4f", m->mean - m->half,
                m->mean + m->half);
    fprintf(out, " (%d run%s)</title>\n", m->runs, m->runs == 1 ? "" : "s");
    if (ci)
        draw_interval(out, s, cx, cap, py(b, fmin(m->mean + m->half, b->yhi)),
                      py(b, fmax(m->mean - m->half, b->ylo)),
                      m->mean + m->half > b->yhi, m->mean - m->half < b->ylo);
    if (marker)
        draw_marker(out, "mean-marker", s, cx, cy, MARKER_R, 1.0);
    else
        draw_bar(out, s, cx, cy, bar_px(l));
    fprintf(out, "</g>\n");
}

/* Panel pi: axes, the reference line, then every series: with runs, a
 * marker each under the line through the means; with intervals, each
 * mean with its interval on top. */
static void draw_panel(FILE *out, const figure *f, int pi, const layout *l)
{
    const figure_panel *p = &f->panels[pi];
    const box *b = &l->panel[pi];
    fprintf(out, "<g class=\"panel\" data-panel=\"");
    put_text(out, p->name);
    fprintf(out, "\" font-family=\"sans-serif\" font-size=\"12\">\n");
    draw_axes(out, p, l, b);
    if (f->has_ref && f->ref_y >= b->ylo && f->ref_y <= b->yhi)
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#555555\" stroke-dasharray=\"6 4\"/>\n", PLOT_L,
                py(b, f->ref_y), PLOT_R, py(b, f->ref_y));
    for (int si = 0; si < f->nseries; si++) {
        if (p->runs)
            draw_runs(out, f, si, l, b, p->intervals);
        draw_mean_line(out, f, si, l, b, p->runs ? 2.0 : 1.5);
        for (int x = 0; x <= l->xmax; x++) {
            if (f->series[si].means[x].runs == 0)
                continue;
            if (p->intervals)
                draw_mean(out, f, si, x, l, b, !p->runs);
            else
                draw_bar(out, &f->series[si], px(l, dodged(f, si, x)),
                         py(b, f->series[si].means[x].mean), bar_px(l));
        }
    }
    fprintf(out, "</g>\n");
}

/* What the interval panels hold that the legend must explain: a mean of
 * one run (no interval), an interval cut at the frame. */
static void interval_notes(const figure *f, const layout *l, int *single,
                           int *cut)
{
    *single = *cut = 0;
    for (int pi = 0; pi < f->npanels; pi++) {
        const box *b = &l->panel[pi];
        for (int si = 0; f->panels[pi].intervals && si < f->nseries; si++)
            for (int x = 0; x <= l->xmax; x++) {
                const figure_mean *m = &f->series[si].means[x];
                *single |= m->runs == 1;
                *cut |= m->runs > 1 && (m->mean + m->half > b->yhi ||
                                        m->mean - m->half < b->ylo);
            }
    }
}

/* The legend, right of the first panel: the series, the interval and the
 * reference line. */
static void draw_legend(FILE *out, const figure *f, const layout *l)
{
    fprintf(out, "<g class=\"legend\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n");
    int y = PLOT_T + 12;
    for (int i = 0; i < f->nseries; i++, y += LEGEND_ROW) {
        const figure_series *s = &f->series[i];
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n", LEGEND_X, y,
                LEGEND_X + 28, y, s->stroke);
        draw_marker(out, "legend-marker", s, LEGEND_X + 14, y, MARKER_R,
                    0.85);
        fprintf(out, "<text x=\"%d\" y=\"%d\">", LEGEND_X + 36, y + 4);
        put_text(out, s->label);
        fprintf(out, "%s</text>\n", s->nruns ? "" : " (no runs)");
    }
    if (f->interval_label != NULL) {
        fprintf(out, "<path d=\"M%d %d V%d M%d %d H%d M%d %d H%d\" "
                "stroke=\"#000000\" stroke-width=\"1.6\" fill=\"none\"/>\n",
                LEGEND_X + 14, y - 8, y + 8, LEGEND_X + 10, y - 8,
                LEGEND_X + 18, LEGEND_X + 10, y + 8, LEGEND_X + 18);
        fprintf(out, "<text x=\"%d\" y=\"%d\">", LEGEND_X + 36, y + 4);
        put_lines(out, f->interval_label, LEGEND_X + 36, 15);
        fprintf(out, "</text>\n");
        y += LEGEND_ROW + (strchr(f->interval_label, '\n') ? 15 : 0);
        int single, cut;
        interval_notes(f, l, &single, &cut);
        if (single) {
            fprintf(out, "<text x=\"%d\" y=\"%d\">one run: mean only, no "
                    "interval</text>\n", LEGEND_X + 36, y + 4);
            y += LEGEND_ROW;
        }
        if (cut) {
            fprintf(out, "<polyline points=\"%d,%d %d,%d %d,%d\" "
                    "fill=\"none\" stroke=\"#000000\" stroke-width=\"1.6\"/>"
                    "\n<text x=\"%d\" y=\"%d\">interval cut at the frame"
                    "</text>\n", LEGEND_X + 10, y + 2, LEGEND_X + 14,
                    y - 2, LEGEND_X + 18, y + 2, LEGEND_X + 36, y + 4);
            y += LEGEND_ROW;
        }
    }
    if (f->has_ref && f->ref_label != NULL) {
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "stroke=\"#555555\" stroke-dasharray=\"6 4\"/>\n", LEGEND_X,
                y, LEGEND_X + 28, y);
        fprintf(out, "<text x=\"%d\" y=\"%d\">", LEGEND_X + 36, y + 4);
        put_text(out, f->ref_label);
        fprintf(out, "</text>\n");
    }
    fprintf(out, "</g>\n");
}

/* The title, the x label under the last panel and the caption. */
static void draw_texts(FILE *out, const figure *f, const layout *l)
{
    int bottom = f->npanels > 0 ? l->panel[f->npanels - 1].bottom : PLOT_T;
    fprintf(out, "<g font-family=\"sans-serif\" fill=\"#000000\">\n"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"15\" "
            "font-weight=\"bold\">", FIG_W / 2, 28);
    put_text(out, f->title);
    fprintf(out, "</text>\n<text class=\"xlabel\" x=\"%d\" y=\"%d\" "
            "text-anchor=\"middle\" font-size=\"13\">", (PLOT_L + PLOT_R) / 2,
            bottom + 42);
    put_text(out, f->xlabel);
    fprintf(out, "</text>\n");
    for (int i = 0; i < FIGURE_MAX_CAPTION && f->caption[i] != NULL; i++) {
        fprintf(out, "<text class=\"caption\" x=\"%d\" y=\"%d\" "
                "font-size=\"12\" fill=\"#333333\">", 24,
                bottom + 68 + i * CAPTION_ROW);
        put_text(out, f->caption[i]);
        fprintf(out, "</text>\n");
    }
    fprintf(out, "</g>\n");
}

void figure_svg(const figure *f, FILE *out)
{
    layout l;
    fit_layout(f, &l);
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
            "fill=\"#ffffff\"/>\n", FIG_W, l.height, FIG_W, l.height, FIG_W,
            l.height);
    draw_texts(out, f, &l);
    for (int i = 0; i < f->npanels; i++)
        draw_panel(out, f, i, &l);
    draw_legend(out, f, &l);
    fprintf(out, "</svg>\n");
}

int figure_write_svg(const figure *f, const char *path, tfq_error *e)
{
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return tfq_error_set(e, TFQ_EIO, "%s: cannot write: %s", path,
                             strerror(errno));
    figure_svg(f, out);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad)
        return tfq_error_set(e, TFQ_EIO, "%s: write failed", path);
    return TFQ_OK;
}

int figure_svg_mem(const figure *f, char **svg, size_t *bytes, tfq_error *e)
{
    *svg = NULL;
    FILE *out = open_memstream(svg, bytes);
    if (out == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory for a figure");
    figure_svg(f, out);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        free(*svg);
        *svg = NULL;
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory for a figure");
    }
    return TFQ_OK;
}

/* Whether prog is an executable file in a directory of PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        return 0;
    while (*path) {
        size_t n = strcspn(path, ":");
        char file[4096];
        if (snprintf(file, sizeof file, "%.*s/%s", n ? (int)n : 1,
                     n ? path : ".", prog) < (int)sizeof file &&
            access(file, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

int figure_write_png(const char *svg, const char *png, tfq_error *e)
{
    if (!on_path(FIGURE_PNG_TOOL))
        return tfq_error_set(e, TFQ_ENOENT, FIGURE_PNG_TOOL " is not on "
                             "PATH");
    char zoom[16];
    snprintf(zoom, sizeof zoom, "%d", FIGURE_PNG_ZOOM);
    char *const args[] = {FIGURE_PNG_TOOL, "-z", zoom, "-o", (char *)png,
                          (char *)svg, NULL};
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return tfq_error_set(e, TFQ_EIO, "%s: cannot start " FIGURE_PNG_TOOL
                             ": %s", png, strerror(errno));
    if (pid == 0) {
        /* Standard output may be the report's --json or --csv. */
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execvp(FIGURE_PNG_TOOL, args);
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return tfq_error_set(e, TFQ_EIO, "%s: " FIGURE_PNG_TOOL ": %s",
                                 png, strerror(errno));
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        return tfq_error_set(e, TFQ_EIO, "%s: " FIGURE_PNG_TOOL " failed "
                             "(%s %d)", png,
                             WIFEXITED(ws) ? "exit status" : "signal",
                             WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
    return TFQ_OK;
}
