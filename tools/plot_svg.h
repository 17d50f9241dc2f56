/* plot_svg.h: a small SVG line-chart writer for the `tapegrad` command (train --plot): panels
 * side by side, each with axes, "nice" ticks (1, 2, 5 times a power of ten), tick labels, axis
 * labels, a title and a legend, and one polyline per series over x = 1..n. No dependency:
 * plain text, escaped. */
#ifndef TAPEGRAD_TOOLS_PLOT_SVG_H
#define TAPEGRAD_TOOLS_PLOT_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct plot_series {
    const char *label; /* in the legend */
    const double *y;   /* n values for x = 1..n; NaN leaves a gap */
    size_t n;
    const char *color; /* an SVG colour, "#1f77b4" */
    bool dashed;
} plot_series;

typedef struct plot_panel {
    const char *title;
    const char *xlabel, *ylabel;
    const plot_series *series;
    size_t n_series;
    bool y_from_zero; /* the y axis starts at 0 (losses, errors) */
    bool y_to_one;    /* the y axis ends at 1 at most (fractions, accuracies) */
} plot_panel;

/* Writes the panels, left to right, under `title` (may be NULL). Returns false when a write
 * failed (errno says why). Panels whose series hold no finite value show "no data". */
bool plot_svg_write(FILE *f, const char *title, const plot_panel *panels, size_t n_panels);

/* The ticks of an axis covering [lo, hi]: a step of 1, 2 or 5 times a power of ten giving
 * about `target` intervals, and the range rounded out to whole steps. Exposed for tests. */
void plot_nice_range(double lo, double hi, int target, double *axis_lo, double *axis_hi,
                     double *step);

#endif
