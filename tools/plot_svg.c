/* plot_svg.c: line charts as SVG text (see plot_svg.h). Each panel is a fixed-size box: a
 * title, a plot area with grid lines at the y ticks, the axes with ticks and labels, and a
 * legend placed in whichever corner of the plot area the curves leave emptiest. */
#include "plot_svg.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* Panel geometry, in SVG user units (pixels). */
enum {
    PANEL_W = 470,
    PANEL_H = 340,
    MARGIN_L = 72, /* room for the y tick labels and the y label */
    MARGIN_R = 18,
    MARGIN_T = 34, /* the panel title */
    MARGIN_B = 52, /* x tick labels and the x label */
    TITLE_H = 34,  /* the overall title band */
    LEGEND_ROW = 18,
};

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* Control characters are not allowed in XML 1.0 text. */
            fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
        }
    }
}

void plot_nice_range(double lo, double hi, int target, double *axis_lo, double *axis_hi,
                     double *step)
{
    if (!(hi > lo)) { /* one value (or a flat curve): a unit-wide window around it */
        double pad = lo != 0 ? fabs(lo) * 0.1 : 0.5;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / (target > 0 ? target : 5);
    double mag = pow(10, floor(log10(raw)));
    double frac = raw / mag;
    double s = frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 5 ? 5 : 10;
    *step = s * mag;
    /* A hair of tolerance so 0.3 / 0.1 does not round out to a fourth step. */
    *axis_lo = floor(lo / *step + 1e-9) * *step;
    *axis_hi = ceil(hi / *step - 1e-9) * *step;
}

/* Decimals that show a tick step exactly (0.05 -> 2, 20 -> 0). */
static int decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 8 ? 8 : d;
}

typedef struct frame {
    double x0, y0, w, h; /* the plot area, top-left corner and size */
    double xlo, xhi, ylo, yhi;
} frame;

static double px(const frame *fr, double x)
{
    return fr->x0 + (x - fr->xlo) / (fr->xhi - fr->xlo) * fr->w;
}

static double py(const frame *fr, double y)
{
    return fr->y0 + fr->h - (y - fr->ylo) / (fr->yhi - fr->ylo) * fr->h;
}

static void draw_series(FILE *f, const frame *fr, const plot_series *s)
{
    bool open = false;
    for (size_t i = 0; i < s->n; i++) {
        double y = s->y[i];
        if (!isfinite(y)) {
            if (open)
                fputs("\"/>\n", f);
            open = false;
            continue;
        }
        if (!open)
            fprintf(f,
                    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
                    "stroke-linejoin=\"round\" points=\"",
                    s->color, s->dashed ? " stroke-dasharray=\"6,4\"" : "");
        fprintf(f, "%s%.1f,%.1f", open ? " " : "", px(fr, (double)(i + 1)), py(fr, y));
        open = true;
    }
    if (open)
        fputs("\"/>\n", f);
    /* Markers while they stay apart; a long run is clearer as plain lines. */
    if (s->n <= 60)
        for (size_t i = 0; i < s->n; i++)
            if (isfinite(s->y[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                        px(fr, (double)(i + 1)), py(fr, s->y[i]), s->color);
}

/* The legend's box in the corner with the fewest data points under it. */
static void draw_legend(FILE *f, const frame *fr, const plot_panel *p)
{
    size_t longest = 0, rows = 0;
    for (size_t k = 0; k < p->n_series; k++) {
        size_t n = p->series[k].label ? strlen(p->series[k].label) : 0;
        longest = n > longest ? n : longest;
        rows++;
    }
    if (rows == 0)
        return;
    double bw = 44 + 7.0 * (double)longest, bh = 8 + LEGEND_ROW * (double)rows;
    const double pad = 8;
    double cx[4] = {fr->x0 + fr->w - bw - pad, fr->x0 + pad, fr->x0 + fr->w - bw - pad,
                    fr->x0 + pad};
    double cy[4] = {fr->y0 + pad, fr->y0 + pad, fr->y0 + fr->h - bh - pad,
                    fr->y0 + fr->h - bh - pad};
    size_t best = 0, best_count = (size_t)-1;
    for (size_t c = 0; c < 4; c++) {
        size_t count = 0;
        for (size_t k = 0; k < p->n_series; k++)
            for (size_t i = 0; i < p->series[k].n; i++) {
                double y = p->series[k].y[i];
                if (!isfinite(y))
                    continue;
                double x = px(fr, (double)(i + 1)), yy = py(fr, y);
                count += x >= cx[c] - 4 && x <= cx[c] + bw + 4 && yy >= cy[c] - 4 &&
                         yy <= cy[c] + bh + 4;
            }
        if (count < best_count) {
            best = c;
            best_count = count;
        }
    }
    double x = cx[best], y = cy[best];
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
            "fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
            x, y, bw, bh);
    for (size_t k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        double ly = y + 4 + LEGEND_ROW * ((double)k + 0.5);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"%s/>\n",
                x + 8, ly, x + 34, ly, s->color, s->dashed ? " stroke-dasharray=\"6,4\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" dominant-baseline=\"middle\">", x + 40, ly + 1);
        xml_text(f, s->label);
        fputs("</text>\n", f);
    }
}

static void draw_panel(FILE *f, double ox, double oy, const plot_panel *p)
{
    frame fr = {ox + MARGIN_L,
                oy + MARGIN_T,
                PANEL_W - MARGIN_L - MARGIN_R,
                PANEL_H - MARGIN_T - MARGIN_B,
                0,
                1,
                0,
                1};
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-weight=\"bold\">",
            fr.x0 + fr.w / 2, oy + 20);
    xml_text(f, p->title);
    fputs("</text>\n", f);

    size_t n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < p->n_series; k++) {
        const plot_series *s = &p->series[k];
        n = s->n > n ? s->n : n;
        for (size_t i = 0; i < s->n; i++)
            if (isfinite(s->y[i])) {
                lo = s->y[i] < lo ? s->y[i] : lo;
                hi = s->y[i] > hi ? s->y[i] : hi;
            }
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            fr.x0, fr.y0, fr.w, fr.h);
    if (!(lo <= hi)) {
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#777\">no "
                "data</text>\n",
                fr.x0 + fr.w / 2, fr.y0 + fr.h / 2);
        return;
    }
    if (p->y_from_zero && lo > 0)
        lo = 0;
    double ystep, xstep;
    plot_nice_range(lo, hi, 5, &fr.ylo, &fr.yhi, &ystep);
    if (p->y_to_one && hi <= 1 && fr.yhi > 1)
        fr.yhi = 1;
    if (p->y_from_zero && fr.ylo < 0 && lo >= 0)
        fr.ylo = 0;
    plot_nice_range(0, (double)(n > 1 ? n : 1), 6, &fr.xlo, &fr.xhi, &xstep);
    if (xstep < 1) { /* epochs are whole numbers */
        xstep = 1;
        fr.xhi = ceil(fr.xhi);
    }
    fr.xlo = 0;

    /* y grid, ticks and labels */
    int yd = decimals(ystep);
    for (double v = fr.ylo; v <= fr.yhi + ystep * 1e-6; v += ystep) {
        double y = py(&fr, v);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
                "dominant-baseline=\"middle\">%.*f</text>\n",
                fr.x0, y, fr.x0 + fr.w, y, fr.x0 - 5, y, fr.x0, y, fr.x0 - 8, y, yd,
                fabs(v) < ystep * 1e-9 ? 0.0 : v);
    }
    /* x ticks and labels */
    int xd = decimals(xstep);
    for (double v = fr.xlo; v <= fr.xhi + xstep * 1e-6; v += xstep) {
        double x = px(&fr, v);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n",
                x, fr.y0 + fr.h, x, fr.y0 + fr.h + 5, x, fr.y0 + fr.h + 20, xd, v);
    }
    /* axis labels */
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", fr.x0 + fr.w / 2,
            oy + PANEL_H - 12);
    xml_text(f, p->xlabel);
    fputs("</text>\n", f);
    double ly = fr.y0 + fr.h / 2;
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f "
            "%.1f)\">",
            ox + 18, ly, ox + 18, ly);
    xml_text(f, p->ylabel);
    fputs("</text>\n", f);

    /* the curves, clipped to the plot area */
    fprintf(f,
            "<clipPath id=\"clip%.0f\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n<g clip-path=\"url(#clip%.0f)\">\n",
            ox, fr.x0 - 3, fr.y0 - 3, fr.w + 6, fr.h + 6, ox);
    for (size_t k = 0; k < p->n_series; k++)
        draw_series(f, &fr, &p->series[k]);
    fputs("</g>\n", f);
    draw_legend(f, &fr, p);
}

bool plot_svg_write(FILE *f, const char *title, const plot_panel *panels, size_t n_panels)
{
    double top = title ? TITLE_H : 0;
    double w = PANEL_W * (double)(n_panels ? n_panels : 1), h = PANEL_H + top;
    errno = 0;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, "
            "sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            w, h, w, h);
    if (title) {
        fprintf(f,
                "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" "
                "font-weight=\"bold\">",
                w / 2);
        xml_text(f, title);
        fputs("</text>\n", f);
    }
    for (size_t i = 0; i < n_panels; i++)
        draw_panel(f, PANEL_W * (double)i, top, &panels[i]);
    fputs("</svg>\n", f);
    if (fflush(f) != 0 || ferror(f)) {
        if (!errno)
            errno = EIO;
        return false;
    }
    return true;
}
