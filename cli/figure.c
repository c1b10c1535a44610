#include "figure.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The canvas, in pixels: the plot on the left, the legend on the right. */
#define FIG_W 880
#define FIG_H 500
#define PLOT_L 80  /* room for the tick labels and the rotated y label */
#define PLOT_R 600
#define PLOT_T 50  /* room for the title */
#define PLOT_B 430 /* room for the tick labels and the x label */
#define LEGEND_X 625
#define LEGEND_ROW 24
#define MARKER_R 4.5

/* Runs sit a little apart so that equal values do not hide each other: a
 * series is shifted by SERIES_DODGE per series, and its runs spread over
 * RUN_JITTER (in layers) by a golden-ratio sequence, the same every time. */
#define SERIES_DODGE 0.07
#define RUN_JITTER 0.12
#define GOLDEN 0.6180339887498949

/* x positions beyond this are not drawn (the net has 8 layers). */
#define FIGURE_MAX_X 64

typedef struct {
    double xlo, xhi; /* data range of the plot area */
    double ylo, yhi;
    double ystep;    /* between y ticks */
    int ydecimals;   /* of the y tick labels */
} axes;

void figure_init(figure *f, const char *title, const char *xlabel,
                 const char *ylabel)
{
    memset(f, 0, sizeof *f);
    f->title = title;
    f->xlabel = xlabel;
    f->ylabel = ylabel;
    f->xmax = 7;
}

void figure_release(figure *f)
{
    for (int i = 0; i < f->nseries; i++)
        free(f->series[i].runs);
    memset(f, 0, sizeof *f);
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

static double px(const axes *a, double x)
{
    return PLOT_L + (x - a->xlo) / (a->xhi - a->xlo) * (PLOT_R - PLOT_L);
}

static double py(const axes *a, double y)
{
    return PLOT_B - (y - a->ylo) / (a->yhi - a->ylo) * (PLOT_B - PLOT_T);
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

/* A y axis from rounded ticks (1, 2 or 5 times a power of ten) that holds
 * every run and the reference line. */
static void fit_axes(const figure *f, axes *a)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < f->nseries; i++)
        for (size_t r = 0; r < f->series[i].nruns; r++) {
            lo = fmin(lo, f->series[i].runs[r].y);
            hi = fmax(hi, f->series[i].runs[r].y);
        }
    if (f->has_ref) {
        lo = fmin(lo, f->ref_y);
        hi = fmax(hi, f->ref_y);
    }
    if (!(lo <= hi)) {
        lo = 0;
        hi = 1;
    }
    double span = hi - lo;
    if (span < 1e-9)
        span = fmax(fabs(hi) * 0.1, 0.01);
    lo -= 0.05 * span;
    hi += 0.05 * span;
    double raw = (hi - lo) / 6, mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    a->ystep = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
    a->ylo = floor(lo / a->ystep) * a->ystep;
    a->yhi = ceil(hi / a->ystep) * a->ystep;
    a->ydecimals = (int)fmax(0, ceil(-log10(a->ystep) - 1e-9));
    a->xlo = -0.5;
    a->xhi = f->xmax + 0.5;
}

/* Background, grid, axes, ticks, labels and title. */
static void draw_frame(FILE *out, const figure *f, const axes *a)
{
    fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
            "fill=\"#ffffff\"/>\n", FIG_W, FIG_H);
    fprintf(out, "<g font-family=\"sans-serif\" font-size=\"12\" "
            "fill=\"#000000\">\n");
    int nticks = (int)lround((a->yhi - a->ylo) / a->ystep);
    for (int i = 0; i <= nticks; i++) {
        double y = a->ylo + i * a->ystep;
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#e0e0e0\"/>\n", PLOT_L, py(a, y), PLOT_R, py(a, y));
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#000000\"/>\n", PLOT_L - 5, py(a, y), PLOT_L,
                py(a, y));
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f"
                "</text>\n", PLOT_L - 8, py(a, y) + 4, a->ydecimals, y);
    }
    for (int x = 0; x <= f->xmax; x++) {
        fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                "stroke=\"#000000\"/>\n", px(a, x), PLOT_B, px(a, x),
                PLOT_B + 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d"
                "</text>\n", px(a, x), PLOT_B + 19, x);
    }
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"#000000\"/>\n", PLOT_L, PLOT_T,
            PLOT_R - PLOT_L, PLOT_B - PLOT_T);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
            "font-size=\"14\">", (PLOT_L + PLOT_R) / 2, PLOT_B + 42);
    put_text(out, f->xlabel);
    fprintf(out, "</text>\n<text transform=\"translate(%d %d) rotate(-90)\" "
            "text-anchor=\"middle\" font-size=\"14\">", 22,
            (PLOT_T + PLOT_B) / 2);
    put_text(out, f->ylabel);
    fprintf(out, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
            "font-size=\"15\" font-weight=\"bold\">", FIG_W / 2, 28);
    put_text(out, f->title);
    fprintf(out, "</text>\n</g>\n");
}

static void draw_marker(FILE *out, const figure_series *s, double cx,
                        double cy)
{
    const double r = MARKER_R;
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
    fprintf(out, " fill=\"%s\" fill-opacity=\"0.85\" stroke=\"%s\"/>\n",
            s->fill, s->stroke);
}

/* The mean of s's runs at each integer x in 0..xmax, into mean[] with
 * count[] runs each; returns how many x have runs. */
static int series_means(const figure_series *s, int xmax, double *mean,
                        int *count)
{
    int have = 0;
    for (int x = 0; x <= xmax; x++) {
        mean[x] = 0;
        count[x] = 0;
    }
    for (size_t i = 0; i < s->nruns; i++) {
        long x = lround(s->runs[i].x);
        if (x < 0 || x > xmax)
            continue;
        mean[x] += s->runs[i].y;
        count[x]++;
    }
    for (int x = 0; x <= xmax; x++)
        if (count[x] > 0) {
            mean[x] /= count[x];
            have++;
        }
    return have;
}

/* The line through the means (with a short bar at each mean), then one
 * marker per run. */
static void draw_series(FILE *out, const figure *f, int si, const axes *a)
{
    const figure_series *s = &f->series[si];
    double dodge = (si - (f->nseries - 1) / 2.0) * SERIES_DODGE;
    double mean[FIGURE_MAX_X + 1];
    int count[FIGURE_MAX_X + 1];
    int xmax = f->xmax < FIGURE_MAX_X ? f->xmax : FIGURE_MAX_X;
    if (series_means(s, xmax, mean, count) > 1) {
        fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"2\" points=\"", s->stroke);
        for (int x = 0; x <= xmax; x++)
            if (count[x] > 0)
                fprintf(out, "%.1f,%.1f ", px(a, x + dodge), py(a, mean[x]));
        fprintf(out, "\"/>\n");
    }
    for (int x = 0; x <= xmax; x++)
        if (count[x] > 0)
            fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                    "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                    px(a, x + dodge - 0.12), py(a, mean[x]),
                    px(a, x + dodge + 0.12), py(a, mean[x]), s->stroke);
    for (size_t i = 0; i < s->nruns; i++) {
        double x = s->runs[i].x;
        if (x < -0.5 || x > xmax + 0.5)
            continue;
        double g = (double)i * GOLDEN;
        double jitter = (g - floor(g) - 0.5) * RUN_JITTER;
        draw_marker(out, s, px(a, x + dodge + jitter), py(a, s->runs[i].y));
    }
}

static void draw_legend(FILE *out, const figure *f)
{
    fprintf(out, "<g font-family=\"sans-serif\" font-size=\"12\">\n");
    int y = PLOT_T + 12;
    for (int i = 0; i < f->nseries; i++, y += LEGEND_ROW) {
        const figure_series *s = &f->series[i];
        fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n", LEGEND_X, y,
                LEGEND_X + 28, y, s->stroke);
        draw_marker(out, s, LEGEND_X + 14, y);
        fprintf(out, "<text x=\"%d\" y=\"%d\">", LEGEND_X + 36, y + 4);
        put_text(out, s->label);
        fprintf(out, "%s</text>\n", s->nruns ? "" : " (no runs)");
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

int figure_write_svg(const figure *f, const char *path, tfq_error *e)
{
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return tfq_error_set(e, TFQ_EIO, "%s: cannot write: %s", path,
                             strerror(errno));
    axes a;
    fit_axes(f, &a);
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\">\n", FIG_W, FIG_H, FIG_W,
            FIG_H);
    draw_frame(out, f, &a);
    if (f->has_ref)
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                "stroke=\"#555555\" stroke-dasharray=\"6 4\"/>\n", PLOT_L,
                py(&a, f->ref_y), PLOT_R, py(&a, f->ref_y));
    for (int i = 0; i < f->nseries; i++)
        draw_series(out, f, i, &a);
    draw_legend(out, f);
    fprintf(out, "</svg>\n");
    int bad = ferror(out);
    if (fclose(out) != 0 || bad)
        return tfq_error_set(e, TFQ_EIO, "%s: write failed", path);
    return TFQ_OK;
}
