/* Figures of runs as SVG, in the manner of Yosinski et al.'s Figures 2 and
 * 3: one or two panels stacked over a shared x axis, one marker per run,
 * a line through the mean of each series at each x, the means with their
 * intervals, axes with ticks and labels, a title, a legend and a caption.
 * x positions are small integers (the layer n); each panel's y axis fits
 * what it shows.
 *
 * The SVG carries its numbers for whoever reads it back: each panel is a
 * <g class="panel" data-panel="NAME">, its y tick labels <text
 * class="ytick" data-value="V">, and each mean a <g class="mean"
 * data-series data-x data-mean data-runs [data-lo data-hi]> with a <title>
 * and, when it has an interval, a <line class="ci">. */
#ifndef TFQ_CLI_FIGURE_H
#define TFQ_CLI_FIGURE_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

#define FIGURE_MAX_SERIES 8
#define FIGURE_MAX_PANELS 2
#define FIGURE_MAX_CAPTION 4
#define FIGURE_LABEL_BYTES 96
/* x positions beyond this are not drawn (the net has 8 layers). */
#define FIGURE_MAX_X 64

typedef enum {
    FIGURE_CIRCLE,
    FIGURE_SQUARE,
    FIGURE_DIAMOND,
    FIGURE_TRIANGLE_UP,
    FIGURE_TRIANGLE_DOWN,
} figure_marker;

typedef struct {
    double x, y;
} figure_xy;

/* What a series has at one x. */
typedef struct {
    int runs;    /* 0: nothing at this x */
    double mean;
    double half; /* half-width of the interval around mean; NAN: none */
} figure_mean;

typedef struct {
    char label[FIGURE_LABEL_BYTES];
    const char *fill;     /* marker fill, an SVG colour ("#ffffff") */
    const char *stroke;   /* marker outline, mean line and interval */
    figure_marker marker;
    figure_xy *runs;      /* (nruns) one point per run; owned */
    size_t nruns, cap;
    figure_mean means[FIGURE_MAX_X + 1]; /* at x = 0 .. FIGURE_MAX_X; the
                                            caller fills them */
} figure_series;

/* A plot area.  Its y range fits the runs when it draws them, else the
 * intervals (the means, zoomed). */
typedef struct {
    const char *name;   /* data-panel: "runs", "means" */
    const char *ylabel; /* at most one '\n': two lines */
    int runs;           /* a marker per run and a line through the means */
    int intervals;      /* the means, a marker each, with their intervals */
} figure_panel;

typedef struct {
    const char *title, *xlabel; /* not owned */
    figure_panel panels[FIGURE_MAX_PANELS]; /* (npanels) top first */
    int npanels;
    const char *caption[FIGURE_MAX_CAPTION]; /* lines under the x label;
                                                NULL ends them early */
    const char *interval_label; /* the legend's interval entry */
    int xmax;            /* the x axis shows 0 .. xmax, a tick per integer */
    double dodge;        /* x offset between series at one x, in layers */
    int has_ref;         /* draw a dashed line at y = ref_y */
    double ref_y;
    const char *ref_label;
    figure_series series[FIGURE_MAX_SERIES]; /* (nseries) */
    int nseries;
} figure;

/* An empty figure without panels; the strings are borrowed and must
 * outlive f. */
void figure_init(figure *f, const char *title, const char *xlabel);
/* Frees every series' runs; f may be initialised again. */
void figure_release(figure *f);

/* Appends a panel below the others; the strings are borrowed.  NULL when
 * FIGURE_MAX_PANELS are there. */
figure_panel *figure_add_panel(figure *f, const char *name,
                               const char *ylabel, int runs, int intervals);

/* Appends a series without runs; NULL when FIGURE_MAX_SERIES are there.
 * The colours are borrowed. */
figure_series *figure_add_series(figure *f, const char *label,
                                 const char *fill, const char *stroke,
                                 figure_marker marker);

/* Appends one run; TFQ_ENOMEM when it cannot grow. */
int figure_add_run(figure_series *s, double x, double y);

/* Writes f as a standalone SVG document to out (its errors: ferror). */
void figure_svg(const figure *f, FILE *out);

/* f as an SVG document in a new buffer, *svg (NUL-terminated, *bytes long
 * without the NUL; the caller frees it).  TFQ_ENOMEM on failure. */
int figure_svg_mem(const figure *f, char **svg, size_t *bytes, tfq_error *e);

/* Writes f as a standalone SVG file at path.  A series without runs is
 * listed in the legend as "(no runs)".  TFQ_EIO naming path on failure. */
int figure_write_svg(const figure *f, const char *path, tfq_error *e);

/* PNGs are rendered by this program (Debian librsvg2-bin), at this many
 * times the SVG's size, so that they stay sharp in a paper or a chat. */
#define FIGURE_PNG_TOOL "rsvg-convert"
#define FIGURE_PNG_ZOOM 2

/* Renders the SVG file svg into the PNG file png with FIGURE_PNG_TOOL, run
 * as a child process (its output goes to stderr).  TFQ_ENOENT when it is
 * not on PATH, TFQ_EIO when it cannot start or fails. */
int figure_write_png(const char *svg, const char *png, tfq_error *e);

#endif
