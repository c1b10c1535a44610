/* Figures of runs as SVG, in the manner of Yosinski et al.'s Figures 2 and
 * 3: one marker per run, a line through the mean of each series' runs at
 * each x, axes with ticks and labels, a title and a legend.  x positions are
 * small integers (the layer n); y is free and the axis fits the data. */
#ifndef TFQ_CLI_FIGURE_H
#define TFQ_CLI_FIGURE_H

#include <stddef.h>

#include "common/err.h"

#define FIGURE_MAX_SERIES 8
#define FIGURE_LABEL_BYTES 96

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

typedef struct {
    char label[FIGURE_LABEL_BYTES];
    const char *fill;     /* marker fill, an SVG colour ("#ffffff") */
    const char *stroke;   /* marker outline and mean line */
    figure_marker marker;
    figure_xy *runs;      /* (nruns) one point per run; owned */
    size_t nruns, cap;
} figure_series;

typedef struct {
    const char *title, *xlabel, *ylabel; /* not owned */
    int xmax;            /* the x axis shows 0 .. xmax, a tick per integer */
    int has_ref;         /* draw a dashed line at y = ref_y */
    double ref_y;
    const char *ref_label;
    figure_series series[FIGURE_MAX_SERIES]; /* (nseries) */
    int nseries;
} figure;

/* An empty figure; the strings are borrowed and must outlive f. */
void figure_init(figure *f, const char *title, const char *xlabel,
                 const char *ylabel);
/* Frees every series' runs; f may be initialised again. */
void figure_release(figure *f);

/* Appends a series without runs; NULL when FIGURE_MAX_SERIES are there.
 * The colours are borrowed. */
figure_series *figure_add_series(figure *f, const char *label,
                                 const char *fill, const char *stroke,
                                 figure_marker marker);

/* Appends one run; TFQ_ENOMEM when it cannot grow. */
int figure_add_run(figure_series *s, double x, double y);

/* Writes f as a standalone SVG file at path.  A series without runs is
 * listed in the legend as "(no runs)".  TFQ_EIO naming path on failure. */
int figure_write_svg(const figure *f, const char *path, tfq_error *e);

#endif
