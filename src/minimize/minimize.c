/* minimize.c: L-BFGS, Newton and gradient descent on a function recorded on a tape
 * (tapegrad/minimize.h). The solvers work on one flat f64 vector made of every element of
 * every leaf; each evaluation writes it into the leaves and records the function again.
 * Built on the public API only (and core's error setter). */
#include "core/core.h"

#include <float.h>
#include <limits.h>
#include <math.h>

/* Line-search constants (Nocedal & Wright, ch. 3): sufficient decrease c1, curvature c2
 * (0.9, the usual choice for quasi-Newton methods), and bounds on the work per search. */
#define C1 1e-4
#define C2 0.9
#define MAX_EXPAND 25
#define MAX_ZOOM 40
#define MAX_BACKTRACK 60

typedef struct mz {
    tg_minimize_fn fn;
    void *ud;
    tg_tensor *const *x;
    size_t n;       /* leaves */
    size_t N;       /* elements of all leaves: the length of the flat vectors */
    size_t *offset; /* offset[i]: where leaf i starts in the flat vector; offset[n] == N */
    tg_tape *tape;
    tg_tensor *f;    /* the current recording's output */
    tg_tensor **out; /* n slots for tg_grad's results */
    bool replayable; /* the tape holds f's recording alone: evaluate by replaying it */
    double f_eps;    /* relative rounding of f's dtype, for the line searches' slack */
    bool neg_inf;    /* lbfgs, newton: a trial value was -inf (fell_to_neg_inf) */
    const tg_minimize_options *opt;
    tg_minimize_result *res;
} mz;

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double norm2(const double *a, size_t n)
{
    /* Scaled so that a gradient of 1e200 does not overflow to infinity. NaN for a vector
     * holding one (fmax would drop it: [NaN, 0] would have norm 0, a stationary point). */
    double scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]))
            return NAN;
        scale = fmax(scale, fabs(a[i]));
    }
    if (scale == 0 || !isfinite(scale))
        return scale;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] / scale) * (a[i] / scale);
    return scale * sqrt(s);
}

static bool all_finite(const double *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return false;
    return true;
}

/* One more of a result's counts, which stop at INT_MAX rather than overflow: max_iter may be
 * INT_MAX, and an iteration take up to MAX_EXPAND + MAX_ZOOM evaluations (L-BFGS's search,
 * twice when it retries without its memory) or MAX_BACKTRACK (Newton's). */
static void count_one(int *count)
{
    *count += *count < INT_MAX;
}

/* Writes the flat vector v into the leaves (converted to each leaf's dtype). */
static void set_x(mz *m, const double *v)
{
    for (size_t i = 0; i < m->n; i++) {
        void *data = tg_tensor_data(m->x[i]);
        size_t k0 = m->offset[i], cnt = m->offset[i + 1] - k0;
        if (tg_tensor_dtype(m->x[i]) == TG_F64) {
            memcpy(data, v + k0, cnt * sizeof(double));
        } else {
            float *d = data;
            for (size_t k = 0; k < cnt; k++)
                d[k] = (float)v[k0 + k];
        }
    }
}

/* Records fn at the leaves' current values (m->f). */
static tg_status record(mz *m)
{
    tg_tape_reset(m->tape);
    m->f = NULL;
    m->replayable = false;
    count_one(&m->res->recordings);
    /* A NULL result is explained by the tape's error, or else by one fn set on this thread:
     * forget any older one so that it cannot be reported in fn's place. */
    tg_clear_error();
    tg_tensor *f = m->fn(m->tape, m->x, m->n, m->ud);
    if (!f) {
        tg_status st = tg_tape_status(m->tape);
        if (st != TG_OK)
            return tg__error(st, "minimize: the function failed (evaluation %d): %s",
                             m->res->evaluations, tg_tape_error(m->tape));
        if (tg_last_status() != TG_OK)
            return tg__error(tg_last_status(), "minimize: the function failed (evaluation %d): %s",
                             m->res->evaluations, tg_last_error());
        return tg__error(TG_EINVAL, "minimize: the function returned NULL without an error");
    }
    if (!tg_tensor_data_const(f)) /* stale: its value is gone, not NaN */
        return tg__error(TG_ESTALE,
                         "minimize: the function returned a tensor recorded before its tape was "
                         "reset (evaluation %d): the function must not reset the tape it is given",
                         m->res->evaluations);
    if (tg_tensor_numel(f) != 1) {
        char s[96];
        return tg__error(TG_ESHAPE,
                         "minimize: the function's value has shape %s; it must be a single "
                         "element",
                         tg_shape_format(s, sizeof s, tg_tensor_rank(f), tg_tensor_shape(f)));
    }
    if (!tg_tensor_requires_grad(f))
        return tg__error(TG_EINVAL, "minimize: the function does not depend on its inputs "
                                    "(through differentiable ops)");
    m->f = f;
    m->replayable = m->opt->replay;
    return TG_OK;
}

/* Evaluates f at the point v: writes the leaves, then replays the recording (tg_tape_replay:
 * the graph recorded once, evaluated again at the new values, bit for bit what a recording
 * would give), or records fn when there is no recording to replay: the first evaluation, the
 * first after a Hessian (whose gradient graph, recorded after f's, a replay would evaluate
 * too), with opt->replay off, or when the replay refuses (then it is recorded afresh). The
 * value may be NaN or infinite (the caller decides what that means); a failing or malformed
 * function is an error. */
static tg_status eval_f(mz *m, const double *v, double *fv)
{
    set_x(m, v);
    count_one(&m->res->evaluations);
    tg_status st = TG_ENOTSUP;
    if (m->replayable)
        st = tg_tape_replay(m->tape);
    if (st != TG_OK && (st = record(m)) != TG_OK)
        return st;
    *fv = tg_tensor_item(m->f);
    return TG_OK;
}

/* The gradient of the current recording, into g. */
static tg_status eval_g(mz *m, double *g)
{
    count_one(&m->res->grad_evaluations);
    tg_status st = tg_grad(m->tape, m->f, m->x, m->n, m->out);
    if (st != TG_OK)
        return tg__error(st, "minimize: gradient: %s", tg_last_error());
    for (size_t i = 0; i < m->n && st == TG_OK; i++)
        st = tg_tensor_to_f64(m->out[i], g + m->offset[i]);
    for (size_t i = 0; i < m->n; i++) {
        tg_tensor_free(m->out[i]);
        m->out[i] = NULL;
    }
    return st;
}

/* The Hessian of the current recording, into H (N x N, row-major), symmetrized: the two
 * halves agree to rounding, and Cholesky reads one. Recorded on the tape after f's graph;
 * the next evaluation's reset drops it. */
static tg_status eval_h(mz *m, double *H)
{
    count_one(&m->res->hessian_evaluations);
    size_t n = m->n;
    tg_tensor **blocks = tg__calloc(n * n, sizeof *blocks);
    if (!blocks)
        return tg__error(TG_ENOMEM, "minimize: out of memory for the Hessian");
    tg_status st = tg_hessian(m->tape, m->f, m->x, n, blocks);
    m->replayable = false; /* the tape now holds the gradient graph too */
    if (st != TG_OK) {
        tg__free(blocks, n * n * sizeof *blocks);
        return tg__error(st, "minimize: Hessian: %s", tg_last_error());
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            const tg_tensor *b = blocks[i * n + j];
            size_t r0 = m->offset[i], rows = m->offset[i + 1] - r0;
            size_t c0 = m->offset[j], cols = m->offset[j + 1] - c0;
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    H[(r0 + r) * m->N + c0 + c] = tg_tensor_get(b, r * cols + c);
        }
    }
    for (size_t i = 0; i < n * n; i++)
        tg_tensor_free(blocks[i]);
    tg__free(blocks, n * n * sizeof *blocks);
    size_t N = m->N;
    for (size_t r = 0; r < N; r++)
        for (size_t c = r + 1; c < N; c++) {
            double a = 0.5 * (H[r * N + c] + H[c * N + r]);
            H[r * N + c] = H[c * N + r] = a;
        }
    if (!all_finite(H, N * N))
        return tg__error(TG_ENUMERIC, "minimize: the Hessian is not finite at iteration %d",
                         m->res->iterations);
    return TG_OK;
}

static void report(mz *m, double fv, double gnorm, double step, double damping)
{
    if (!m->opt->progress)
        return;
    tg_minimize_iter it = {m->res->iterations,      fv, gnorm, step, damping, m->res->evaluations,
                           m->res->grad_evaluations};
    m->opt->progress(&it, m->opt->progress_ud);
}

/* ---- strong Wolfe line search (Nocedal & Wright, Algorithms 3.5 and 3.6) ---------------------
 * Along x + a d from a point with value f0 and slope dphi0 = g.d < 0, finds a step a with
 *     phi(a) <= f0 + c1 a dphi0            (sufficient decrease)
 *     |phi'(a)| <= c2 |dphi0|              (strong curvature)
 * The sufficient-decrease test allows rounding: f values that agree to a few ulps cannot be
 * ordered, and near a minimum every decrease is that small. */

typedef struct ls_point {
    double a, phi, dphi; /* dphi is NaN when the gradient there was not computed */
} ls_point;

typedef struct ls {
    mz *m;
    const double *x, *d;
    double f0, dphi0, slack;
    double *xt, *gt;     /* the trial point and its gradient (the result on success) */
    double *x_lo, *g_lo; /* the best point so far that has its gradient */
} ls;

/* A trial value of -inf (lbfgs, newton) is no step too far, which a shorter one would avoid:
 * f has no lower bound there (or its value overflows). Read as too far, as NaN and +inf are,
 * it ended the run with no progress or at max_iter, as if rounding or the budget stopped it.
 * The run stops as gd's does at -inf: diverged, at the last accepted point. */
static tg_status fell_to_neg_inf(mz *m)
{
    m->neg_inf = true;
    return tg__error(TG_ENUMERIC,
                     "minimize: %s diverged: the value fell to -inf at a trial point of iteration "
                     "%d (is the function bounded below?)",
                     tg_minimize_method_name(m->opt->method), m->res->iterations + 1);
}

/* phi(a), evaluating f at x + a d into xt; a NaN or +inf reads as +inf (too far), -inf stops
 * the run (fell_to_neg_inf). */
static tg_status ls_phi(ls *s, double a, double *phi)
{
    for (size_t i = 0; i < s->m->N; i++)
        s->xt[i] = s->x[i] + a * s->d[i];
    tg_status st = eval_f(s->m, s->xt, phi);
    if (st == TG_OK && *phi == -INFINITY)
        return fell_to_neg_inf(s->m);
    if (st == TG_OK && !isfinite(*phi))
        *phi = INFINITY;
    return st;
}

/* phi'(a) at the point ls_phi evaluated last, its gradient into gt. */
static tg_status ls_dphi(ls *s, double *dphi)
{
    tg_status st = eval_g(s->m, s->gt);
    *dphi = all_finite(s->gt, s->m->N) ? dot(s->gt, s->d, s->m->N) : NAN;
    return st;
}

static bool ls_armijo(const ls *s, double a, double phi)
{
    return phi <= s->f0 + C1 * a * s->dphi0 + s->slack;
}

/* A trial step in the bracket between lo and hi: the minimizer of the cubic through both
 * points' values and slopes when hi's slope is known, else of the quadratic through lo's value
 * and slope and hi's value; bisection when the fit is unusable or lands within 10% of an end
 * (which keeps the bracket shrinking). */
static double ls_interpolate(const ls_point *lo, const ls_point *hi)
{
    double delta = hi->a - lo->a, a = NAN;
    if (isfinite(hi->phi) && !isnan(hi->dphi)) {
        double d1 = lo->dphi + hi->dphi - 3 * (lo->phi - hi->phi) / (lo->a - hi->a);
        double disc = d1 * d1 - lo->dphi * hi->dphi;
        if (disc >= 0) {
            double d2 = copysign(sqrt(disc), delta);
            double den = hi->dphi - lo->dphi + 2 * d2;
            if (den != 0)
                a = hi->a - delta * (hi->dphi + d2 - d1) / den;
        }
    } else if (isfinite(hi->phi)) {
        double c = (hi->phi - lo->phi - lo->dphi * delta) / (delta * delta);
        if (c > 0)
            a = lo->a - lo->dphi / (2 * c);
    }
    double lo_end = lo->a + 0.1 * delta, hi_end = hi->a - 0.1 * delta;
    if (!isfinite(a) || (a - lo_end) * (a - hi_end) > 0)
        a = lo->a + 0.5 * delta;
    return a;
}

/* Keeps the trial (xt, gt) as the best point with a gradient. */
static void ls_keep_lo(ls *s, ls_point *lo, const ls_point *p)
{
    *lo = *p;
    memcpy(s->x_lo, s->xt, s->m->N * sizeof(double));
    memcpy(s->g_lo, s->gt, s->m->N * sizeof(double));
}

/* Alg. 3.6: shrinks [*lo, hi] (*lo satisfies sufficient decrease, with the lower value) until
 * a point satisfies both conditions. *found: 1 the trial (xt, gt) does, 2 only *lo could be
 * had (taken when lo->a > 0), 0 nothing. *lo is the caller's: it moves with x_lo and g_lo
 * (ls_keep_lo), so the point the caller settles for and its value always agree. */
static tg_status ls_zoom(ls *s, ls_point *lo_io, ls_point hi, int *found, double *a_out)
{
    ls_point lo = *lo_io;
    double dnorm = norm2(s->d, s->m->N), xnorm = norm2(s->x, s->m->N);
    for (int it = 0; it < MAX_ZOOM; it++) {
        /* A bracket narrower than the rounding of x cannot move x any more. */
        if (fabs(hi.a - lo.a) * dnorm <= 4 * DBL_EPSILON * fmax(1, xnorm))
            break;
        ls_point p = {ls_interpolate(&lo, &hi), 0, NAN};
        tg_status st = ls_phi(s, p.a, &p.phi);
        if (st != TG_OK)
            return st;
        if (!ls_armijo(s, p.a, p.phi) || p.phi >= lo.phi) {
            hi = p;
            continue;
        }
        if ((st = ls_dphi(s, &p.dphi)) != TG_OK)
            return st;
        if (isnan(p.dphi)) { /* a finite value with a NaN gradient: treat as too far */
            hi = p;
            hi.dphi = NAN;
            continue;
        }
        if (fabs(p.dphi) <= -C2 * s->dphi0) {
            *found = 1;
            *a_out = p.a;
            *lo_io = lo;
            return TG_OK;
        }
        if (p.dphi * (hi.a - lo.a) >= 0)
            hi = lo;
        ls_keep_lo(s, &lo, &p);
    }
    *found = lo.a > 0 ? 2 : 0;
    *a_out = lo.a;
    *lo_io = lo;
    return TG_OK;
}

/* Alg. 3.5 from the step a1. On success (*found true) xt, gt hold the new point and its
 * gradient, *phi_out its value and *a_out the step. */
static tg_status line_search(ls *s, double a1, bool *found, double *a_out, double *phi_out)
{
    *found = false;
    ls_point prev = {0, s->f0, s->dphi0}, lo = prev;
    for (int i = 0; i < MAX_EXPAND; i++) {
        ls_point p = {a1, 0, NAN};
        tg_status st = ls_phi(s, p.a, &p.phi);
        if (st != TG_OK)
            return st;
        int z = -1;
        double az = 0;
        if (!ls_armijo(s, p.a, p.phi) || (i > 0 && p.phi > prev.phi)) {
            st = ls_zoom(s, &lo, p, &z, &az);
        } else {
            if ((st = ls_dphi(s, &p.dphi)) != TG_OK)
                return st;
            /* A value equal to the last one is an overshoot, unless the slope says f still falls:
             * far from a minimizer of a large f, a short step changes f by less than rounding
             * ((x - 1e18)^2 from x = 0 moved one unit an iteration), and only a longer one will. */
            if (i > 0 && p.phi == prev.phi && !(p.dphi < 0)) {
                st = ls_zoom(s, &lo, p, &z, &az);
            } else if (isnan(p.dphi)) {
                p.phi = INFINITY;
                st = ls_zoom(s, &lo, p, &z, &az);
            } else if (fabs(p.dphi) <= -C2 * s->dphi0) {
                *found = true;
                *a_out = p.a;
                *phi_out = p.phi;
                return TG_OK;
            } else if (p.dphi >= 0) {
                ls_point hi = lo;
                ls_keep_lo(s, &lo, &p);
                st = ls_zoom(s, &lo, hi, &z, &az);
            } else {
                ls_keep_lo(s, &lo, &p);
                prev = p;
                a1 *= 2; /* still going down steeply: try further */
                continue;
            }
        }
        if (st != TG_OK)
            return st;
        if (z == 1) {
            *found = true;
            *a_out = az;
            *phi_out = s->m->f ? tg_tensor_item(s->m->f) : NAN;
            if (!isfinite(*phi_out))
                *phi_out = INFINITY;
            return TG_OK;
        }
        break; /* z == 2 or 0: settle for lo below */
    }
    /* No point met both conditions within the budget: lo still has sufficient decrease (and a
     * gradient), which is progress; a lo at 0 is none. */
    if (lo.a > 0) {
        memcpy(s->xt, s->x_lo, s->m->N * sizeof(double));
        memcpy(s->gt, s->g_lo, s->m->N * sizeof(double));
        *found = true;
        *a_out = lo.a;
        *phi_out = lo.phi;
    }
    return TG_OK;
}

/* ---- the methods --------------------------------------------------------------------------- */

typedef struct state {
    double *x, *g, *xn, *gn; /* current point and gradient, the next ones */
    double f;
    double *work; /* method-specific */
} state;

/* Every method's test before an iteration: converged (the gradient's norm at most tol) or out
 * of iterations; then *stop says which. */
static bool stopped(const mz *m, double gnorm, int *stop)
{
    if (gnorm <= m->opt->tol)
        *stop = TG_MINIMIZE_CONVERGED;
    else if (m->res->iterations >= m->opt->max_iter)
        *stop = TG_MINIMIZE_MAX_ITER;
    else
        return false;
    return true;
}

/* Iterations in a row that lower neither the lowest f nor the lowest gradient norm of the run,
 * after which it stops with no progress. The searches' slack accepts values equal to f to
 * rounding, which is progress while the gradient shrinks (f may be too large for its changes
 * to show: 1e10 + a quadratic in f32); steps that keep lowering neither only spin until
 * max_iter (as when tol is below what rounding allows). */
#define MAX_IDLE 10

typedef struct idle_run {
    double f, gnorm; /* the lowest of each so far */
    int count;       /* iterations in a row that lowered neither */
} idle_run;

/* Counts the iterate (value f, gradient norm gnorm): true when the run has been idle too long. */
static bool idle_too_long(idle_run *p, double f, double gnorm)
{
    p->count = f < p->f || gnorm < p->gnorm ? 0 : p->count + 1;
    p->f = fmin(p->f, f);
    p->gnorm = fmin(p->gnorm, gnorm);
    return p->count >= MAX_IDLE;
}

/* The correction pairs L-BFGS makes room for: memory, but no more than the run can store (one
 * an iteration), so that a large memory on a short run does not allocate pairs it never fills.
 * The same iterates either way: the ring of pairs does not wrap before max_iter. */
static int pair_slots(const tg_minimize_options *o)
{
    return o->max_iter < o->memory ? (o->max_iter > 0 ? o->max_iter : 1) : o->memory;
}

static tg_status lbfgs(mz *m, state *s, int *stop)
{
    size_t N = m->N;
    int mem = pair_slots(m->opt);
    /* work: d, x_lo, g_lo, then mem pairs (s_k, y_k), then rho[mem] and alpha[mem] */
    double *d = s->work, *x_lo = d + N, *g_lo = x_lo + N;
    double *S = g_lo + N, *Y = S + (size_t)mem * N, *rho = Y + (size_t)mem * N;
    double *alpha = rho + mem;
    int count = 0, head = 0; /* pairs stored; the slot the next one goes to */
    idle_run idle = {INFINITY, INFINITY, 0};
    for (;;) {
        double gnorm = norm2(s->g, N);
        if (stopped(m, gnorm, stop))
            return TG_OK;
        if (idle_too_long(&idle, s->f, gnorm)) {
            *stop = TG_MINIMIZE_NO_PROGRESS;
            return TG_OK;
        }
        /* Two-loop recursion: d = -H g, with H0 = (s.y / y.y) I from the newest pair. */
        for (size_t i = 0; i < N; i++)
            d[i] = -s->g[i];
        for (int k = 0; k < count; k++) {
            int j = (head - 1 - k + 2 * mem) % mem;
            alpha[j] = rho[j] * dot(S + (size_t)j * N, d, N);
            for (size_t i = 0; i < N; i++)
                d[i] -= alpha[j] * Y[(size_t)j * N + i];
        }
        if (count > 0) {
            int j = (head - 1 + mem) % mem;
            double gamma = 1 / (rho[j] * dot(Y + (size_t)j * N, Y + (size_t)j * N, N));
            for (size_t i = 0; i < N; i++)
                d[i] *= gamma;
        }
        for (int k = count - 1; k >= 0; k--) {
            int j = (head - 1 - k + 2 * mem) % mem;
            double beta = rho[j] * dot(Y + (size_t)j * N, d, N);
            for (size_t i = 0; i < N; i++)
                d[i] += (alpha[j] - beta) * S[(size_t)j * N + i];
        }
        double dphi0 = dot(s->g, d, N);
        if (!(dphi0 < 0)) { /* rounding made -H g uphill: start again from steepest descent */
            count = 0;
            for (size_t i = 0; i < N; i++)
                d[i] = -s->g[i];
            dphi0 = -gnorm * gnorm;
        }
        /* The first step has no curvature to scale it: a unit-length move (N&W 3.5). */
        double a1 = count == 0 ? fmin(1, 1 / gnorm) : 1;
        if (isinf(dphi0)) { /* g.d overflowed (|g| beyond 1e154): the same trial point, as a
                             * step along d made unit-length, whose slope is finite */
            const double dnorm = norm2(d, N);
            for (size_t i = 0; i < N; i++)
                d[i] /= dnorm;
            dphi0 = dot(s->g, d, N);
            a1 *= dnorm;
        }
        ls l = {m, s->x, d, s->f, dphi0, 4 * m->f_eps * fabs(s->f), s->xn, s->gn, x_lo, g_lo};
        bool found;
        double a, fn;
        tg_status st = line_search(&l, a1, &found, &a, &fn);
        if (st != TG_OK)
            return st;
        if (!found) {
            if (count > 0) { /* the memory may be what misleads: try once without it */
                count = 0;
                continue;
            }
            *stop = TG_MINIMIZE_NO_PROGRESS;
            return TG_OK;
        }
        /* The new pair, kept when the curvature s.y is safely positive (strong Wolfe makes
         * it so unless the search settled for a weaker point). Judged before it is stored:
         * with the memory full, its slot holds the oldest pair, still in use if it is not. */
        double sy = 0, yy = 0;
        for (size_t i = 0; i < N; i++) {
            const double si = s->xn[i] - s->x[i], yi = s->gn[i] - s->g[i];
            sy += si * yi;
            yy += yi * yi;
        }
        if (sy > DBL_EPSILON * yy) {
            double *sk = S + (size_t)head * N, *yk = Y + (size_t)head * N;
            for (size_t i = 0; i < N; i++) {
                sk[i] = s->xn[i] - s->x[i];
                yk[i] = s->gn[i] - s->g[i];
            }
            rho[head] = 1 / sy;
            head = (head + 1) % mem;
            if (count < mem)
                count++;
        }
        double *t = s->x;
        s->x = s->xn;
        s->xn = t;
        t = s->g;
        s->g = s->gn;
        s->gn = t;
        s->f = fn;
        m->res->iterations++;
        report(m, s->f, norm2(s->g, N), a * norm2(d, N), 0);
    }
}

/* Cholesky H = L L^T in place (lower triangle), false when H is not positive definite. */
static bool cholesky(double *L, size_t N)
{
    for (size_t j = 0; j < N; j++) {
        double dj = L[j * N + j];
        for (size_t k = 0; k < j; k++)
            dj -= L[j * N + k] * L[j * N + k];
        if (!(dj > 0) || !isfinite(dj))
            return false;
        dj = sqrt(dj);
        L[j * N + j] = dj;
        for (size_t i = j + 1; i < N; i++) {
            double v = L[i * N + j];
            for (size_t k = 0; k < j; k++)
                v -= L[i * N + k] * L[j * N + k];
            L[i * N + j] = v / dj;
        }
    }
    return true;
}

/* Solves L L^T p = b (b may be p). */
static void cholesky_solve(const double *L, size_t N, const double *b, double *p)
{
    for (size_t i = 0; i < N; i++) {
        double v = b[i];
        for (size_t k = 0; k < i; k++)
            v -= L[i * N + k] * p[k];
        p[i] = v / L[i * N + i];
    }
    for (size_t i = N; i-- > 0;) {
        double v = p[i];
        for (size_t k = i + 1; k < N; k++)
            v -= L[k * N + i] * p[k];
        p[i] = v / L[i * N + i];
    }
}

/* The Newton direction: (H + tau I) p = -g, with tau = 0 when H is positive definite, else the
 * first of beta, 2 beta, 4 beta, ... (beta = 1e-3 of H's largest diagonal entry) that makes the
 * Cholesky factorization succeed (Nocedal & Wright, Algorithm 3.3; Levenberg damping). */
static bool newton_direction(const double *H, double *L, size_t N, const double *g, double *p,
                             double *tau_out)
{
    double min_diag = INFINITY, max_diag = 0;
    for (size_t i = 0; i < N; i++) {
        min_diag = fmin(min_diag, H[i * N + i]);
        max_diag = fmax(max_diag, fabs(H[i * N + i]));
    }
    double beta = 1e-3 * fmax(max_diag, 1e-8);
    double tau = min_diag > 0 ? 0 : -min_diag + beta;
    for (int tries = 0; tries < 200; tries++) {
        memcpy(L, H, N * N * sizeof *L);
        for (size_t i = 0; i < N; i++)
            L[i * N + i] += tau;
        if (cholesky(L, N)) {
            for (size_t i = 0; i < N; i++)
                p[i] = -g[i];
            cholesky_solve(L, N, p, p);
            *tau_out = tau;
            return all_finite(p, N);
        }
        tau = fmax(2 * tau, beta);
    }
    return false;
}

static tg_status newton(mz *m, state *s, int *stop)
{
    size_t N = m->N;
    double *p = s->work, *H = p + N, *L = H + N * N;
    idle_run idle = {INFINITY, INFINITY, 0};
    for (;;) {
        double gnorm = norm2(s->g, N);
        if (stopped(m, gnorm, stop))
            return TG_OK;
        if (idle_too_long(&idle, s->f, gnorm)) {
            *stop = TG_MINIMIZE_NO_PROGRESS;
            return TG_OK;
        }
        /* The tape holds the recording at x (the start, or the step just accepted). */
        tg_status st = eval_h(m, H);
        if (st != TG_OK)
            return st;
        double tau;
        if (!newton_direction(H, L, N, s->g, p, &tau)) {
            *stop = TG_MINIMIZE_NO_PROGRESS;
            return TG_OK;
        }
        /* Backtracking (Armijo) from the full step, by safeguarded quadratic interpolation. */
        double dphi0 = dot(s->g, p, N), slack = 4 * m->f_eps * fabs(s->f), a = 1, fn = 0;
        bool found = false;
        for (int k = 0; k < MAX_BACKTRACK && !found; k++) {
            for (size_t i = 0; i < N; i++)
                s->xn[i] = s->x[i] + a * p[i];
            if ((st = eval_f(m, s->xn, &fn)) != TG_OK)
                return st;
            if (fn == -INFINITY)
                return fell_to_neg_inf(m);
            if (isfinite(fn) && fn <= s->f + C1 * a * dphi0 + slack) {
                /* A point whose gradient is not finite is too far, as in L-BFGS's search. */
                if ((st = eval_g(m, s->gn)) != TG_OK)
                    return st;
                if (all_finite(s->gn, N)) {
                    found = true;
                    break;
                }
            }
            double q = isfinite(fn) ? -dphi0 * a * a / (2 * (fn - s->f - dphi0 * a)) : 0;
            a = fmin(0.5 * a, fmax(0.1 * a, q));
        }
        if (!found) {
            *stop = TG_MINIMIZE_NO_PROGRESS;
            return TG_OK;
        }
        double *t = s->x;
        s->x = s->xn;
        s->xn = t;
        t = s->g;
        s->g = s->gn;
        s->gn = t;
        s->f = fn;
        m->res->iterations++;
        report(m, s->f, norm2(s->g, N), a * norm2(p, N), tau);
    }
}

static tg_status gd(mz *m, state *s, int *stop)
{
    size_t N = m->N;
    double lr = m->opt->lr;
    for (;;) {
        double gnorm = norm2(s->g, N);
        if (stopped(m, gnorm, stop))
            return TG_OK;
        for (size_t i = 0; i < N; i++)
            s->xn[i] = s->x[i] - lr * s->g[i];
        double fn;
        tg_status st = eval_f(m, s->xn, &fn);
        if (st == TG_OK && isfinite(fn))
            st = eval_g(m, s->gn);
        if (st != TG_OK)
            return st;
        if (!isfinite(fn) || !all_finite(s->gn, N)) {
            *stop = TG_MINIMIZE_DIVERGED;
            /* -inf is no overshoot a smaller rate would avoid: f has no lower bound there */
            if (fn == -INFINITY)
                return tg__error(TG_ENUMERIC,
                                 "minimize: gd diverged: the value fell to -inf at iteration %d "
                                 "(is the function bounded below?)",
                                 m->res->iterations + 1);
            return tg__error(TG_ENUMERIC,
                             "minimize: gd diverged: the %s is not finite at "
                             "iteration %d (is the learning rate %g too large?)",
                             isfinite(fn) ? "gradient" : "value", m->res->iterations + 1, lr);
        }
        double *t = s->x;
        s->x = s->xn;
        s->xn = t;
        t = s->g;
        s->g = s->gn;
        s->gn = t;
        s->f = fn;
        m->res->iterations++;
        report(m, s->f, norm2(s->g, N), lr * gnorm, 0);
    }
}

/* ---- entry ----------------------------------------------------------------------------------- */

static tg_status check_args(tg_minimize_fn fn, tg_tensor *const *x, size_t n,
                            const tg_minimize_options *o)
{
    if (!fn || !x || n == 0)
        return tg__error(TG_EINVAL, "minimize: %s", !fn ? "no function" : "no inputs");
    for (size_t i = 0; i < n; i++) {
        if (!x[i])
            return tg__error(TG_EINVAL, "minimize: input %zu is NULL", i);
        if (!tg_tensor_is_leaf(x[i]))
            return tg__error(TG_EINVAL,
                             "minimize: input %zu is not a leaf (a tape tensor "
                             "cannot be moved)",
                             i);
        /* A leaf listed twice would be two variables of which f sees one (the copy written
         * last) while its gradient counts for both: slopes and curvature twice what they are. */
        for (size_t j = 0; j < i; j++)
            if (x[j] == x[i])
                return tg__error(TG_EINVAL, "minimize: inputs %zu and %zu are the same leaf", j, i);
    }
    if (o->method != TG_MINIMIZE_LBFGS && o->method != TG_MINIMIZE_NEWTON &&
        o->method != TG_MINIMIZE_GD)
        return tg__error(TG_EINVAL, "minimize: unknown method %d", (int)o->method);
    if (o->max_iter < 0)
        return tg__error(TG_EINVAL, "minimize: max_iter must be >= 0, not %d", o->max_iter);
    if (!(o->tol >= 0))
        return tg__error(TG_EINVAL, "minimize: tol must be a number >= 0, not %g", o->tol);
    if (o->method == TG_MINIMIZE_GD && !(o->lr > 0 && isfinite(o->lr)))
        return tg__error(TG_EINVAL, "minimize: gd needs a learning rate > 0, not %g", o->lr);
    if (o->method == TG_MINIMIZE_LBFGS && o->memory < 1)
        return tg__error(TG_EINVAL, "minimize: lbfgs needs a memory >= 1, not %d", o->memory);
    return TG_OK;
}

/* Bytes of the method's work area, or 0 when it overflows. */
static size_t work_size(const tg_minimize_options *o, size_t N)
{
    size_t count;
    if (o->method == TG_MINIMIZE_LBFGS) {
        size_t mem = (size_t)pair_slots(o);
        if (mem > (SIZE_MAX / sizeof(double) - 3 * N - 2 * mem) / (2 * N + 1) / 2)
            return 0;
        count = 3 * N + 2 * mem * N + 2 * mem;
    } else if (o->method == TG_MINIMIZE_NEWTON) {
        if (N > (size_t)1 << 26 || N * N > (SIZE_MAX / sizeof(double) - N) / 2)
            return 0;
        count = N + 2 * N * N;
    } else {
        count = 1;
    }
    return count * sizeof(double);
}

tg_status tg_minimize(tg_minimize_fn fn, void *ud, tg_tensor *const *x, size_t n,
                      const tg_minimize_options *opt, tg_minimize_result *res)
{
    tg_minimize_options defaults = TG_MINIMIZE_OPTIONS_INIT;
    const tg_minimize_options *o = opt ? opt : &defaults;
    tg_minimize_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->value = NAN;
    res->grad_norm = NAN;
    res->stop = TG_MINIMIZE_ERROR; /* until a run ends normally */
    tg_status st = check_args(fn, x, n, o);
    if (st != TG_OK)
        return st;

    mz m = {fn, ud, x, n, 0, NULL, NULL, NULL, NULL, false, DBL_EPSILON, false, o, res};
    state s = {0};
    double *vecs = NULL; /* s's four vectors, which the methods swap around */
    size_t vec_bytes = 0, work_bytes = 0;
    /* made_grad[i]: this run made leaf i require grad, and turns that off again at the end
     * (only then: an error before or while setting the flags leaves the others as they were). */
    bool *made_grad = tg__calloc(n, sizeof *made_grad);
    m.offset = tg__calloc(n + 1, sizeof *m.offset);
    m.out = tg__calloc(n, sizeof *m.out);
    if (!made_grad || !m.offset || !m.out) {
        st = tg__error(TG_ENOMEM, "minimize: out of memory");
        goto done;
    }
    bool any_f32 = false;
    for (size_t i = 0; i < n; i++) {
        m.offset[i + 1] = m.offset[i] + tg_tensor_numel(x[i]);
        any_f32 |= tg_tensor_dtype(x[i]) == TG_F32;
    }
    m.N = m.offset[n];
    if (any_f32)
        m.f_eps = FLT_EPSILON;
    if (m.N == 0) {
        st = tg__error(TG_EINVAL, "minimize: the inputs have no elements");
        goto done;
    }
    work_bytes = work_size(o, m.N);
    if (m.N > SIZE_MAX / sizeof(double) / 4 || work_bytes == 0) {
        st = tg__error(TG_ENOMEM, "minimize: %zu variables are too many for %s", m.N,
                       tg_minimize_method_name(o->method));
        goto done;
    }
    vec_bytes = 4 * m.N * sizeof(double);
    vecs = s.x = tg__malloc(vec_bytes);
    s.work = tg__malloc(work_bytes);
    m.tape = tg_tape_new();
    if (!s.x || !s.work || !m.tape) {
        st = tg__error(TG_ENOMEM, "minimize: out of memory for %zu variables", m.N);
        goto done;
    }
    s.g = s.x + m.N;
    s.xn = s.g + m.N;
    s.gn = s.xn + m.N;
    for (size_t i = 0; i < n; i++) {
        if (tg_tensor_requires_grad(x[i]))
            continue;
        if ((st = tg_tensor_set_requires_grad(x[i], true)) != TG_OK)
            goto done;
        made_grad[i] = true;
    }
    for (size_t i = 0; i < n && st == TG_OK; i++)
        st = tg_tensor_to_f64(x[i], s.x + m.offset[i]);
    if (st != TG_OK)
        goto done;

    /* The start. */
    if ((st = eval_f(&m, s.x, &s.f)) != TG_OK)
        goto done;
    res->value = s.f; /* what the start gave, should it be refused */
    if (!isfinite(s.f)) {
        st = tg__error(TG_ENUMERIC, "minimize: the function is %s at the start",
                       isnan(s.f) ? "NaN" : "infinite");
        goto done;
    }
    if ((st = eval_g(&m, s.g)) != TG_OK)
        goto done;
    res->grad_norm = norm2(s.g, m.N);
    if (!all_finite(s.g, m.N)) {
        st = tg__error(TG_ENUMERIC, "minimize: the gradient is NaN or infinite at the start");
        goto done;
    }
    report(&m, s.f, norm2(s.g, m.N), 0, 0);
    int stop = TG_MINIMIZE_MAX_ITER;
    if (o->method == TG_MINIMIZE_LBFGS)
        st = lbfgs(&m, &s, &stop);
    else if (o->method == TG_MINIMIZE_NEWTON)
        st = newton(&m, &s, &stop);
    else
        st = gd(&m, &s, &stop);
    if (m.neg_inf)
        stop = TG_MINIMIZE_DIVERGED;
    /* An error stops a run before any limit: only divergence names its own reason. */
    res->stop =
        st == TG_OK || stop == TG_MINIMIZE_DIVERGED ? (tg_minimize_stop)stop : TG_MINIMIZE_ERROR;
    /* s.x is the last accepted point whatever happened after it (the leaves may hold a trial). */
    set_x(&m, s.x);
    res->value = s.f;
    res->grad_norm = norm2(s.g, m.N);
    res->converged = res->grad_norm <= o->tol;
    if (res->converged)
        res->stop = TG_MINIMIZE_CONVERGED;

done:
    for (size_t i = 0; made_grad && i < n; i++)
        if (made_grad[i])
            tg_tensor_set_requires_grad(x[i], false);
    tg_tape_free(m.tape);
    if (s.work)
        tg__free(s.work, work_bytes);
    if (vecs)
        tg__free(vecs, vec_bytes);
    if (m.out)
        tg__free(m.out, n * sizeof *m.out);
    if (m.offset)
        tg__free(m.offset, (n + 1) * sizeof *m.offset);
    if (made_grad)
        tg__free(made_grad, n * sizeof *made_grad);
    return st;
}

const char *tg_minimize_method_name(tg_minimize_method method)
{
    switch (method) {
    case TG_MINIMIZE_LBFGS: return "lbfgs";
    case TG_MINIMIZE_NEWTON: return "newton";
    case TG_MINIMIZE_GD: return "gd";
    }
    return "?";
}

bool tg_minimize_method_parse(const char *name, tg_minimize_method *out)
{
    static const tg_minimize_method all[] = {TG_MINIMIZE_LBFGS, TG_MINIMIZE_NEWTON, TG_MINIMIZE_GD};
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (strcmp(name, tg_minimize_method_name(all[i])) == 0) {
            if (out)
                *out = all[i];
            return true;
        }
    return false;
}

const char *tg_minimize_stop_name(tg_minimize_stop stop)
{
    switch (stop) {
    case TG_MINIMIZE_CONVERGED: return "converged";
    case TG_MINIMIZE_MAX_ITER: return "max_iter";
    case TG_MINIMIZE_NO_PROGRESS: return "no_progress";
    case TG_MINIMIZE_DIVERGED: return "diverged";
    case TG_MINIMIZE_ERROR: return "error";
    }
    return "?";
}
