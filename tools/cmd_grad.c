/* cmd_grad.c: `tapegrad grad`, the value and gradients of a tgx program. */
#include "cli.h"

#include <tapegrad/io.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== tapegrad grad ========================================================================= */

static const char GRAD_USAGE[] =
    "usage: tapegrad grad [options] PROGRAM [NAME=VALUE ...] [--const NAME=VALUE ...]\n"
    "       tapegrad grad [options] -f FILE [NAME=VALUE ...]\n"
    "\n"
    "Evaluates a tgx program (see docs/tgx.md) and prints its value and its gradient with\n"
    "respect to every NAME=VALUE input. A program is statements separated by ';' or new\n"
    "lines, 'name = expr' bindings and, last, the output expression.\n"
    "\n"
    "  NAME=VALUE          an input to differentiate: a number (0-d) or a nested list\n"
    "  --const NAME=VALUE  an input without gradient (targets, labels)\n"
    "  -f FILE             read the program from FILE ('-' for stdin; at most 16 MiB)\n"
    "  --json              print one JSON object {\"value\", \"shape\", \"grad\"[, \"check\"]};\n"
    "                      numbers have 17 significant digits, NaN and infinities are the\n"
    "                      strings \"NaN\", \"Infinity\", \"-Infinity\"\n"
    "  --dtype f64|f32     precision of the evaluation (default f64)\n"
    "  --seed VALUE        differentiate sum(seed * output) for a non-scalar output\n"
    "                      (default all ones; a number applies to every element)\n"
    "  --check             compare with central finite differences in f64, print the largest\n"
    "                      error per input, exit 1 when one is above the tolerance\n"
    "  --tol VALUE         the tolerance of --check (default 1e-6)\n"
    "  --hessian           add the Hessian of a single-valued output: for each pair of\n"
    "                      inputs a, b the block hessian[a][b] of shape shape(a) + shape(b)\n"
    "  --jacobian          add the Jacobian: for each input a, jacobian[a] of shape\n"
    "                      shape(output) + shape(a)\n"
    "  --jvp NAME=VALUE    add jvp, J.v in the output's shape, for the tangent VALUE of input\n"
    "                      NAME (a number applies to every element); repeat it for more\n"
    "                      inputs; inputs without one get a zero tangent\n"
    "  --dot FILE          write the graph as Graphviz dot; '-' writes it to stdout and\n"
    "                      the results to stderr, so that it can be piped to dot\n"
    "  --render FILE       draw the graph with Graphviz; FILE ends in .svg, .png or .pdf\n"
    "  -h, --help          show this help\n"
    "\n"
    "--seed does not apply to --hessian, --jacobian and --jvp, which are of the output\n"
    "itself; inputs bound with --const get no blocks and take no tangent. With --json these\n"
    "are the keys \"jacobian\", \"hessian\" and \"jvp\" after \"grad\".\n"
    "\n"
    "A program that starts with '-' goes after '--': tapegrad grad -- '-x^2' x=3\n"
    "\n"
    "Exit status: 0 success; 1 program error, unreadable file or failed check; 2 bad usage.\n"
    "\n"
    "Example (micrograd's test; value -20, dx = 46):\n"
    "  tapegrad grad 'z = 2*x + 2 + x; q = relu(z) + z*x; h = relu(z*z); h + q + q*x' x=-4\n"
    "Example (Rosenbrock's Hessian at (1, 1): [[802, -400], [-400, 200]]):\n"
    "  tapegrad grad '(1 - x)^2 + 100*(y - x^2)^2' x=1 y=1 --hessian\n";

/* --jvp NAME=VALUE, as given. */
typedef struct jvp_arg {
    const char *arg, *text; /* text: VALUE, inside arg */
    size_t name_len;
} jvp_arg;

typedef struct grad_input {
    const char *arg;  /* "NAME=VALUE" as given */
    char *name;       /* malloc'd copy of NAME */
    const char *text; /* VALUE, inside arg */
    bool is_const;
    tg_tensor *leaf;   /* in the evaluation dtype */
    tg_tensor *leaf64; /* f64 copy for --check (consts only) */
    double max_err;
    tg_tensor *tangent; /* --jvp's, in the evaluation dtype, or NULL */
    tg_tensor *jac;     /* --jacobian's block, or NULL */
    tg_tensor **hess;   /* --hessian's row of blocks, one per differentiable input (n_in slots) */
} grad_input;

typedef struct grad_opts {
    bool json, check, hessian, jacobian;
    jvp_arg *jvp;
    size_t n_jvp;
    tg_tensor *jv; /* --jvp's result (a tape tensor), or NULL */
    tg_dtype dtype;
    double tol;
    const char *seed_text, *dot_path, *render_path, *file, *program;
    grad_input *in;
    size_t n_in;
    const char **positional;
    size_t n_positional;
    char check_error[512]; /* why --check could not run, or "" */
} grad_opts;

/* What --check evaluates: the program in f64 on gradcheck's copies of the differentiable
 * inputs plus f64 copies of the constants, reduced to sum(seed * output) when a seed
 * applies, so the gradient checked is exactly the one printed. */
typedef struct check_ctx {
    const tg_program *prog;
    grad_opts *o;
    tg_binding *env;
    tg_tensor *seed64; /* NULL: the output itself */
} check_ctx;

static tg_tensor *check_fn(tg_tape *tape, tg_tensor *const *inputs, size_t n, void *ud)
{
    check_ctx *c = ud;
    size_t k = 0, j = 0;
    for (size_t i = 0; i < c->o->n_in; i++) {
        grad_input *in = &c->o->in[i];
        c->env[k++] = (tg_binding){in->name, in->is_const ? in->leaf64 : inputs[j++]};
    }
    (void)n; /* gradcheck passes the differentiable inputs only; the count is known */
    tg_tensor *y = tg_program_eval(c->prog, tape, TG_F64, c->env, k, NULL);
    if (y && c->seed64)
        y = tg_sum(tape, tg_mul(tape, y, c->seed64), TG_ALL_AXES, false);
    return y;
}

static void grad_free(grad_opts *o)
{
    for (size_t i = 0; i < o->n_in; i++) {
        grad_input *in = &o->in[i];
        free(in->name);
        tg_tensor_free(in->leaf);
        tg_tensor_free(in->leaf64);
        tg_tensor_free(in->tangent);
        tg_tensor_free(in->jac);
        for (size_t j = 0; in->hess && j < o->n_in; j++)
            tg_tensor_free(in->hess[j]);
        free(in->hess);
    }
    free(o->in);
    free(o->jvp);
    free(o->positional);
}

/* Splits NAME=VALUE into o->in; usage errors return EXIT_USAGE. */
static int add_input(grad_opts *o, const char *arg, bool is_const)
{
    grad_input *in = &o->in[o->n_in];
    memset(in, 0, sizeof *in);
    int st = split_binding("grad", arg, &in->name, &in->text);
    if (st != EXIT_OK)
        return st;
    o->n_in++;
    for (size_t i = 0; i + 1 < o->n_in; i++)
        if (strcmp(o->in[i].name, in->name) == 0)
            return usage_error("grad", "'%s' is bound twice", in->name);
    in->arg = arg;
    in->is_const = is_const;
    return EXIT_OK;
}

static int grad_parse_args(int argc, char **argv, grad_opts *o)
{
    o->dtype = TG_F64;
    o->tol = 1e-6;
    /* At most argc inputs and positionals: allocate once. */
    o->in = calloc((size_t)argc + 1, sizeof *o->in);
    o->positional = calloc((size_t)argc + 1, sizeof *o->positional);
    o->jvp = calloc((size_t)argc + 1, sizeof *o->jvp);
    if (!o->in || !o->positional || !o->jvp) {
        complain("grad", "out of memory");
        return EXIT_FAIL;
    }
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (take_positional(a, &only_positional, o->positional, &o->n_positional))
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(GRAD_USAGE, stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--check") == 0) {
            o->check = true;
            continue;
        }
        if (strcmp(a, "--hessian") == 0 || strcmp(a, "--jacobian") == 0) {
            *(a[2] == 'h' ? &o->hessian : &o->jacobian) = true;
            continue;
        }
        static const char *const with_value[] = {"--dtype",  "--seed",  "--tol", "--dot",
                                                 "--render", "--const", "--jvp", "-f"};
        const char *opt;
        int got = take_valued_option("grad", argc, argv, &i, with_value,
                                     sizeof with_value / sizeof *with_value,
                                     !o->n_positional && !o->file, &opt, &v);
        if (got != EXIT_OK)
            return got;
        if (strcmp(opt, "--dtype") == 0) {
            if (!parse_dtype(v, &o->dtype))
                return usage_error("grad", "--dtype must be f64 or f32, not '%s'", v);
        } else if (strcmp(opt, "--seed") == 0) {
            o->seed_text = v;
        } else if (strcmp(opt, "--tol") == 0) {
            char *end;
            o->tol = strtod(v, &end);
            if (end == v || *end || !(o->tol >= 0))
                return usage_error("grad", "--tol must be a number >= 0, not '%s'", v);
        } else if (strcmp(opt, "--dot") == 0) {
            o->dot_path = v;
        } else if (strcmp(opt, "--render") == 0) {
            o->render_path = v;
        } else if (strcmp(opt, "--const") == 0) {
            int st = add_input(o, v, true);
            if (st != EXIT_OK)
                return st;
        } else if (strcmp(opt, "--jvp") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || !is_identifier(v, (size_t)(eq - v)))
                return usage_error("grad", "--jvp takes NAME=VALUE, not '%s'", v);
            o->jvp[o->n_jvp++] = (jvp_arg){v, eq + 1, (size_t)(eq - v)};
        } else {
            o->file = v;
        }
    }
    size_t first = 0;
    if (!o->file) {
        if (o->n_positional == 0)
            return usage_error("grad", "no program given");
        o->program = o->positional[0];
        first = 1;
    }
    for (size_t i = first; i < o->n_positional; i++) {
        int st = add_input(o, o->positional[i], false);
        if (st != EXIT_OK)
            return st;
    }
    for (size_t k = 0; k < o->n_jvp; k++) { /* each names a differentiable input, once */
        const jvp_arg *t = &o->jvp[k];
        size_t i = 0;
        while (i < o->n_in && !(strlen(o->in[i].name) == t->name_len &&
                                strncmp(o->in[i].name, t->arg, t->name_len) == 0))
            i++;
        if (i == o->n_in)
            return usage_error("grad", "--jvp %s: no input is called '%.*s'", t->arg,
                               (int)t->name_len, t->arg);
        if (o->in[i].is_const)
            return usage_error("grad",
                               "--jvp %s: '%s' is bound with --const, so it has no "
                               "tangent",
                               t->arg, o->in[i].name);
        for (size_t j = 0; j < k; j++)
            if (o->jvp[j].name_len == t->name_len &&
                strncmp(o->jvp[j].arg, t->arg, t->name_len) == 0)
                return usage_error("grad", "--jvp: '%s' is given two tangents", o->in[i].name);
    }
    if (o->json && o->dot_path && strcmp(o->dot_path, "-") == 0)
        return usage_error("grad", "--dot - and --json both want stdout");
    const named_path out[] = {{"--dot", o->dot_path}, {"--render", o->render_path}};
    const int rc = check_outputs("grad", out, 2, &(named_path){"program file", o->file});
    return rc != EXIT_OK ? rc : check_render_path("grad", o->render_path);
}

/* The seed for backward: --seed (a number fills the output's shape), or all ones for a
 * non-scalar output, or NULL (plain backward). *out is the caller's. */
static int make_seed(grad_opts *o, const tg_tensor *y, tg_dtype dtype, tg_tensor **out)
{
    *out = NULL;
    int rank = tg_tensor_rank(y);
    const size_t *shape = tg_tensor_shape(y);
    if (!o->seed_text) {
        if (tg_tensor_numel(y) == 1)
            return EXIT_OK;
        *out = tg_tensor_ones(dtype, rank, shape);
    } else {
        tg_tensor *s = NULL;
        int st = parse_value_arg("grad", "--seed", o->seed_text, dtype, &s);
        if (st != EXIT_OK)
            return st;
        bool same = tg_tensor_rank(s) == rank;
        for (int i = 0; same && i < rank; i++)
            same = tg_tensor_shape(s)[i] == shape[i];
        if (same) {
            *out = s;
            return EXIT_OK;
        }
        if (tg_tensor_rank(s) != 0) {
            char ss[96], ys[96];
            complain("grad", "--seed has shape %s, the output has shape %s",
                     tg_shape_format(ss, sizeof ss, tg_tensor_rank(s), tg_tensor_shape(s)),
                     tg_shape_format(ys, sizeof ys, rank, shape));
            tg_tensor_free(s);
            return EXIT_FAIL;
        }
        *out = tg_tensor_full(dtype, rank, shape, tg_tensor_item(s));
        tg_tensor_free(s);
    }
    if (!*out) {
        complain("grad", "%s", tg_last_error());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* --check: the largest finite-difference error per differentiable input, into in->max_err.
 * Returns EXIT_OK when all are within tolerance, EXIT_FAIL otherwise. */
static int run_check(grad_opts *o, const tg_program *prog, const tg_tensor *seed, bool *ok)
{
    *ok = false;
    size_t n = 0;
    for (size_t i = 0; i < o->n_in; i++)
        n += !o->in[i].is_const;
    tg_tensor **xs = calloc(n + 1, sizeof *xs);
    double *errs = calloc(n + 1, sizeof *errs);
    tg_binding *env = calloc(o->n_in + 1, sizeof *env);
    check_ctx c = {prog, o, env, NULL};
    int rc = EXIT_FAIL;
    if (!xs || !errs || !env) {
        complain("grad", "out of memory");
        goto done;
    }
    for (size_t i = 0, j = 0; i < o->n_in; i++) {
        grad_input *in = &o->in[i];
        if (!in->is_const) {
            xs[j++] = in->leaf;
        } else if (parse_value_arg("grad", in->name, in->text, TG_F64, &in->leaf64) != EXIT_OK) {
            goto done;
        }
    }
    if (seed) {
        size_t numel = tg_tensor_numel(seed);
        double *v = malloc((numel ? numel : 1) * sizeof *v);
        if (v && tg_tensor_to_f64(seed, v) == TG_OK)
            c.seed64 = tg_tensor_from_f64(TG_F64, tg_tensor_rank(seed), tg_tensor_shape(seed), v);
        free(v);
        if (!c.seed64) {
            complain("grad", "--check: %s", tg_last_error());
            goto done;
        }
    }
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.tol = o->tol;
    tg_status st = n ? tg_gradcheck(check_fn, &c, xs, n, &opt, errs) : TG_OK;
    if (st != TG_OK && st != TG_ENUMERIC) {
        /* Not a verdict on the gradients (e.g. an output cut off by detach): said with the
         * results, and the check counts as failed. */
        snprintf(o->check_error, sizeof o->check_error, "%s", tg_last_error());
        rc = EXIT_OK;
        goto done;
    }
    for (size_t i = 0, j = 0; i < o->n_in; i++)
        if (!o->in[i].is_const)
            o->in[i].max_err = errs[j++];
    *ok = st == TG_OK;
    rc = EXIT_OK;
done:
    tg_tensor_free(c.seed64);
    free(xs);
    free(errs);
    free(env);
    return rc;
}

/* ---- --hessian, --jacobian, --jvp ------------------------------------------------------------ */

/* --jvp's tangent for input `in`: VALUE of the input's shape (a number fills it). */
static int make_tangent(grad_opts *o, grad_input *in, const jvp_arg *t)
{
    tg_tensor *v = NULL;
    int st = parse_value_arg("grad", "--jvp", t->text, o->dtype, &v);
    if (st != EXIT_OK)
        return st;
    int rank = tg_tensor_rank(in->leaf);
    const size_t *shape = tg_tensor_shape(in->leaf);
    bool same = tg_tensor_rank(v) == rank;
    for (int i = 0; same && i < rank; i++)
        same = tg_tensor_shape(v)[i] == shape[i];
    if (same) {
        in->tangent = v;
        return EXIT_OK;
    }
    if (tg_tensor_rank(v) != 0) {
        char vs[96], xs[96];
        complain("grad", "--jvp %s: the tangent has shape %s, the input %s", in->name,
                 tg_shape_format(vs, sizeof vs, tg_tensor_rank(v), tg_tensor_shape(v)),
                 tg_shape_format(xs, sizeof xs, rank, shape));
        tg_tensor_free(v);
        return EXIT_FAIL;
    }
    in->tangent = tg_tensor_full(o->dtype, rank, shape, tg_tensor_item(v));
    tg_tensor_free(v);
    if (!in->tangent) {
        complain("grad", "%s", tg_last_error());
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* A zero matrix (rows, cols) for an output that depends on no input. */
static tg_tensor *zero_block(tg_dtype dt, size_t rows, size_t cols)
{
    const size_t shape[2] = {rows, cols};
    return tg_tensor_zeros(dt, 2, shape);
}

/* J v of an output that depends on no input: zeros of its shape, a tape tensor as tg_jvp's
 * is. Not y * 0, which is NaN where y is infinite or NaN. NULL with the error set. */
static tg_tensor *zero_jvp(tg_tape *tape, const tg_tensor *y)
{
    const tg_dtype dt = tg_tensor_dtype(y);
    const size_t bytes = tg_tensor_numel(y) * tg_dtype_size(dt);
    void *z = calloc(bytes ? bytes : 1, 1);
    if (!z) {
        tg_tape_fail(tape, TG_ENOMEM, "out of memory");
        return NULL;
    }
    tg_tensor *t = tg_constant(tape, dt, tg_tensor_rank(y), tg_tensor_shape(y), z);
    free(z);
    return t;
}

/* Computes what --hessian, --jacobian and --jvp ask for, on the tape y was recorded on, into
 * the inputs (jac, hess) and o->jv. After backward: the leaves' grads are left as they are. */
static int run_diff(grad_opts *o, tg_tape *tape, tg_tensor *y)
{
    if (!o->hessian && !o->jacobian && !o->n_jvp)
        return EXIT_OK;
    const bool live = tg_tensor_requires_grad(y);
    const size_t ny = tg_tensor_numel(y);
    if (o->hessian && ny != 1) {
        char s[96];
        complain("grad",
                 "--hessian: the output has shape %s, not a single value (--jacobian gives "
                 "the derivatives of every element)",
                 tg_shape_format(s, sizeof s, tg_tensor_rank(y), tg_tensor_shape(y)));
        return EXIT_FAIL;
    }
    for (size_t k = 0; k < o->n_jvp; k++)
        for (size_t i = 0; i < o->n_in; i++)
            if (strlen(o->in[i].name) == o->jvp[k].name_len &&
                strncmp(o->in[i].name, o->jvp[k].arg, o->jvp[k].name_len) == 0) {
                int st = make_tangent(o, &o->in[i], &o->jvp[k]);
                if (st != EXIT_OK)
                    return st;
            }
    int rc = EXIT_FAIL;
    size_t n = 0;
    grad_input **din = calloc(o->n_in + 1, sizeof *din);
    tg_tensor **xs = calloc(o->n_in + 1, sizeof *xs), **vs = calloc(o->n_in + 1, sizeof *vs);
    tg_tensor **blocks = calloc(o->n_in * o->n_in + 1, sizeof *blocks);
    tg_tensor **zeros = calloc(o->n_in + 1, sizeof *zeros);
    if (!din || !xs || !vs || !blocks || !zeros) {
        complain("grad", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < o->n_in; i++)
        if (!o->in[i].is_const) {
            din[n] = &o->in[i];
            xs[n++] = o->in[i].leaf;
        }
    tg_status st = TG_OK;
    const tg_dtype dt = tg_tensor_dtype(y);
    if (o->jacobian) {
        if (live && (st = tg_jacobian(tape, y, xs, n, blocks)) != TG_OK) {
            complain("grad", "--jacobian: %s", tg_last_error());
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            if (!(din[i]->jac = live ? blocks[i] : zero_block(dt, ny, tg_tensor_numel(xs[i]))))
                goto oom;
    }
    if (o->hessian) {
        if (live && (st = tg_hessian(tape, y, xs, n, blocks)) != TG_OK) {
            complain("grad", "--hessian: %s", tg_last_error());
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(din[i]->hess = calloc(o->n_in, sizeof *din[i]->hess))) {
                for (size_t j = i * n; live && j < n * n; j++)
                    tg_tensor_free(blocks[j]);
                goto oom;
            }
            for (size_t j = 0; j < n; j++)
                din[i]->hess[j] =
                    live ? blocks[i * n + j]
                         : zero_block(dt, tg_tensor_numel(xs[i]), tg_tensor_numel(xs[j]));
        }
    }
    if (o->n_jvp) {
        for (size_t i = 0; i < n; i++) {
            vs[i] = din[i]->tangent;
            if (!vs[i] &&
                !(vs[i] = zeros[i] = tg_tensor_zeros(tg_tensor_dtype(xs[i]), tg_tensor_rank(xs[i]),
                                                     tg_tensor_shape(xs[i]))))
                goto oom;
        }
        if (live && (st = tg_jvp(tape, y, xs, vs, n, &o->jv)) != TG_OK) {
            complain("grad", "--jvp: %s", tg_last_error());
            goto done;
        }
        if (!live && !(o->jv = zero_jvp(tape, y)))
            goto oom;
    }
    rc = EXIT_OK;
    goto done;
oom:
    complain("grad", "%s", tg_last_error());
done:
    for (size_t i = 0; zeros && i < n; i++)
        tg_tensor_free(zeros[i]);
    free(din);
    free(xs);
    free(vs);
    free(blocks);
    free(zeros);
    return rc;
}

/* t's values as a dense of shape a + b (ranks ra, rb; rank up to 2 TG_MAX_RANK), shape kept in
 * `shape`. False when memory runs out. */
static bool dense_of(const tg_tensor *t, int ra, const size_t *a, int rb, const size_t *b,
                     size_t *shape, dense *d)
{
    for (int i = 0; i < ra; i++)
        shape[i] = a[i];
    for (int i = 0; i < rb; i++)
        shape[ra + i] = b[i];
    d->rank = ra + rb;
    d->shape = shape;
    d->numel = tg_tensor_numel(t);
    d->dtype = tg_tensor_dtype(t);
    d->v = malloc((d->numel ? d->numel : 1) * sizeof *d->v);
    return d->v && tg_tensor_to_f64(t, d->v) == TG_OK;
}

/* A printed label ("grad NAME", "hessian[A][B]") as long as the names are: a fixed buffer
 * would cut a long name short and print a name the input does not have. malloc'd; NULL (said
 * on stderr) when memory runs out. */
static char *label_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *label_of(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        complain("grad", "out of memory");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* One block: JSON `"key": value` (first: no comma before) or a labelled text print. */
static bool print_block(FILE *f, bool json, bool first, const char *key, const char *label,
                        const tg_tensor *t, int ra, const size_t *a, int rb, const size_t *b)
{
    size_t shape[2 * TG_MAX_RANK];
    dense d;
    if (!dense_of(t, ra, a, rb, b, shape, &d)) {
        free(d.v);
        complain("grad", "out of memory");
        return false;
    }
    if (json) {
        fputs(first ? "" : ", ", f);
        json_string(f, key);
        fputs(": ", f);
        json_dense(f, &d);
    } else {
        print_dense(f, label, &d);
    }
    free(d.v);
    return true;
}

/* "jacobian", "hessian" and "jvp" after "grad" (JSON), or their blocks printed readably. */
static bool print_diff(grad_opts *o, const tg_tensor *y, FILE *f)
{
    const int ry = tg_tensor_rank(y);
    const size_t *sy = tg_tensor_shape(y);
    for (int pass = 0; pass < 2; pass++) {
        bool hess = pass == 1;
        if (hess ? !o->hessian : !o->jacobian)
            continue;
        if (o->json)
            fprintf(f, ", \"%s\": {", hess ? "hessian" : "jacobian");
        bool first = true;
        for (size_t i = 0; i < o->n_in; i++) {
            grad_input *a = &o->in[i];
            if (a->is_const)
                continue;
            const int ra = tg_tensor_rank(a->leaf);
            const size_t *sa = tg_tensor_shape(a->leaf);
            if (!hess) {
                char *label = label_of("jacobian[%s]", a->name);
                bool ok =
                    label && print_block(f, o->json, first, a->name, label, a->jac, ry, sy, ra, sa);
                free(label);
                if (!ok)
                    return false;
                first = false;
                continue;
            }
            if (o->json) {
                fputs(first ? "" : ", ", f);
                json_string(f, a->name);
                fputs(": {", f);
            }
            bool first_b = true;
            for (size_t j = 0, jd = 0; j < o->n_in; j++) {
                grad_input *b = &o->in[j];
                if (b->is_const)
                    continue;
                char *label = label_of("hessian[%s][%s]", a->name, b->name);
                bool ok =
                    label && print_block(f, o->json, first_b, b->name, label, a->hess[jd++], ra, sa,
                                         tg_tensor_rank(b->leaf), tg_tensor_shape(b->leaf));
                free(label);
                if (!ok)
                    return false;
                first_b = false;
            }
            if (o->json)
                fputc('}', f);
            first = false;
        }
        if (o->json)
            fputc('}', f);
    }
    if (o->jv && !print_block(f, o->json, false, "jvp", "jvp", o->jv, ry, sy, 0, NULL))
        return false;
    return true;
}

static int print_results(grad_opts *o, tg_tensor *y, bool checked, bool check_ok)
{
    dense d;
    if (!dense_from(y, false, &d)) {
        complain("grad", "out of memory");
        return EXIT_FAIL;
    }
    /* --dot - takes stdout for the graph alone (it is written after these) */
    FILE *f = o->dot_path && strcmp(o->dot_path, "-") == 0 ? stderr : stdout;
    if (o->json) {
        fputs("{\"value\": ", f);
        json_dense(f, &d);
        fputs(", \"shape\": ", f);
        json_shape(f, d.rank, d.shape);
        fputs(", \"grad\": {", f);
    } else {
        print_dense(f, "value", &d);
    }
    free(d.v);
    bool first = true;
    for (size_t i = 0; i < o->n_in; i++) {
        grad_input *in = &o->in[i];
        if (in->is_const)
            continue;
        dense g;
        if (!dense_from(in->leaf, true, &g)) {
            complain("grad", "out of memory");
            return EXIT_FAIL;
        }
        if (o->json) {
            fputs(first ? "" : ", ", f);
            json_string(f, in->name);
            fputs(": ", f);
            json_dense(f, &g);
        } else {
            char *label = label_of("grad %s", in->name);
            if (!label) {
                free(g.v);
                return EXIT_FAIL;
            }
            print_dense(f, label, &g);
            free(label);
        }
        free(g.v);
        first = false;
    }
    if (o->json)
        fputc('}', f);
    if (!print_diff(o, y, f))
        return EXIT_FAIL;
    if (checked && o->check_error[0]) {
        if (o->json) {
            fputs(", \"check\": {\"ok\": false, \"error\": ", f);
            json_string(f, o->check_error);
            fputc('}', f);
        } else {
            fprintf(f, "check: could not run: %s\n", o->check_error);
        }
    } else if (checked) {
        if (o->json) {
            fputs(", \"check\": {\"ok\": ", f);
            fputs(check_ok ? "true" : "false", f);
            fputs(", \"tol\": ", f);
            json_number(f, o->tol);
            fputs(", \"max_error\": {", f);
        } else {
            char tol[32];
            format_short(tol, sizeof tol, o->tol, TG_F64);
            fprintf(f, "check (central differences in f64, tolerance %s): %s\n", tol,
                    check_ok ? "ok" : "FAILED");
        }
        first = true;
        for (size_t i = 0; i < o->n_in; i++) {
            grad_input *in = &o->in[i];
            if (in->is_const)
                continue;
            if (o->json) {
                fputs(first ? "" : ", ", f);
                json_string(f, in->name);
                fputs(": ", f);
                json_number(f, in->max_err);
            } else {
                fprintf(f, "  %s: max error %.3g%s\n", in->name, in->max_err,
                        in->max_err <= o->tol ? "" : "  (above tolerance)");
            }
            first = false;
        }
        if (o->json)
            fputs("}}", f);
    }
    if (o->json)
        fputs("}\n", f);
    return EXIT_OK;
}

/* --dot and --render, right after backward so that its gradients show: before the derivative
 * matrices and products, which record their own nodes on the tape and run passes of their own,
 * and before --check; both free leaves of theirs (the writers refuse a recording once any leaf
 * was freed: they cannot tell which). --render writes its file here; the dot text is kept in
 * *dot (tg_dot_string_free) and written after the results, by write_dot. */
static int make_graph(const grad_opts *o, const tg_tape *tape, const char *src, char **dot)
{
    *dot = NULL;
    tg_dot_options opt = TG_DOT_OPTIONS_INIT;
    /* A short one-line program makes a good title; a long one would swamp the picture. */
    if (strlen(src) <= 80 && !strchr(src, '\n'))
        opt.title = src;
    if (o->dot_path && tg_dot_string(tape, &opt, dot, NULL) != TG_OK) {
        complain("grad", "writing '%s': %s", o->dot_path, tg_last_error());
        return EXIT_FAIL;
    }
    if (o->render_path) {
        const char *format = strrchr(o->render_path, '.') + 1;
        if (tg_dot_render(tape, format, o->render_path, &opt) != TG_OK) {
            complain("grad", "--render: %s", tg_last_error());
            return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}

/* --dot: the text make_graph made, to its file or to standard output ("-"). */
static int write_dot(const grad_opts *o, const char *dot)
{
    if (!o->dot_path)
        return EXIT_OK;
    if (strcmp(o->dot_path, "-") == 0) {
        if (fputs(dot, stdout) < 0 || fflush(stdout) != 0) {
            complain("grad", "--dot: cannot write to standard output: %s", strerror(errno));
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    out_file out;
    if (!out_open("grad", "--dot", o->dot_path, &out))
        return EXIT_FAIL;
    bool ok = fputs(dot, out.f) >= 0;
    int err = errno;
    if (!out_close(&out, ok))
        return EXIT_FAIL;
    if (!ok) {
        complain("grad", "--dot: cannot write '%s': %s", o->dot_path, strerror(err));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cmd_grad(int argc, char **argv)
{
    grad_opts o;
    memset(&o, 0, sizeof o);
    char *text = NULL;
    tg_program *prog = NULL;
    tg_tape *tape = NULL;
    tg_tensor *seed = NULL;
    char *dot = NULL; /* --dot's text, made before --check */
    tg_binding *env = NULL;
    int rc = grad_parse_args(argc, argv, &o);
    if (rc != EXIT_OK) {
        rc = rc < 0 ? EXIT_OK : rc; /* --help */
        goto done;
    }
    for (size_t i = 0; i < o.n_in; i++) {
        grad_input *in = &o.in[i];
        if ((rc = parse_value_arg("grad", in->name, in->text, o.dtype, &in->leaf)) != EXIT_OK)
            goto done;
        if (tg_tensor_set_name(in->leaf, in->name) != TG_OK ||
            (!in->is_const && tg_tensor_set_requires_grad(in->leaf, true) != TG_OK)) {
            complain("grad", "%s", tg_last_error());
            rc = EXIT_FAIL;
            goto done;
        }
    }
    if (o.seed_text) { /* a malformed seed is a usage error: find it before any work */
        tg_tensor *s = NULL;
        if ((rc = parse_value_arg("grad", "--seed", o.seed_text, o.dtype, &s)) != EXIT_OK)
            goto done;
        tg_tensor_free(s);
    }
    /* So are --jvp's tangents: a malformed one must not wait for the program, whose own
     * errors (exit 1) would hide it; their shapes are checked against the inputs later. */
    for (size_t k = 0; k < o.n_jvp; k++) {
        tg_tensor *v = NULL;
        if ((rc = parse_value_arg("grad", "--jvp", o.jvp[k].text, o.dtype, &v)) != EXIT_OK)
            goto done;
        tg_tensor_free(v);
    }
    rc = EXIT_FAIL;
    size_t len;
    const char *src;
    if (load_program("grad", o.file, o.program, &text, &src, &len, &prog) != EXIT_OK)
        goto done;
    env = calloc(o.n_in + 1, sizeof *env);
    tape = tg_tape_new();
    if (!env || !tape) {
        complain("grad", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < o.n_in; i++)
        env[i] = (tg_binding){o.in[i].name, o.in[i].leaf};
    const char *missing = check_bindings("grad", prog, env, o.n_in);
    tg_expr_error err;
    tg_tensor *y = tg_program_eval(prog, tape, o.dtype, env, o.n_in, &err);
    if (!y) {
        report_program_error(&err, src, len, missing, "differentiate with respect to it");
        goto done;
    }
    if ((rc = make_seed(&o, y, o.dtype, &seed)) != EXIT_OK)
        goto done;
    rc = EXIT_FAIL;
    /* An output that depends on no input through differentiable ops has zero gradients. */
    if (tg_tensor_requires_grad(y) &&
        (seed ? tg_backward_seed(tape, y, seed) : tg_backward(tape, y)) != TG_OK) {
        complain("grad", "backward: %s", tg_last_error());
        goto done;
    }
    if (make_graph(&o, tape, src, &dot) != EXIT_OK)
        goto done;
    if ((rc = run_diff(&o, tape, y)) != EXIT_OK)
        goto done;
    rc = EXIT_FAIL;
    bool check_ok = true;
    if (o.check && run_check(&o, prog, seed, &check_ok) != EXIT_OK)
        goto done;
    if (print_results(&o, y, o.check, check_ok) != EXIT_OK)
        goto done;
    if (write_dot(&o, dot) != EXIT_OK)
        goto done;
    rc = check_ok ? EXIT_OK : EXIT_FAIL;
done:
    tg_dot_string_free(dot);
    tg_tensor_free(seed);
    tg_tape_free(tape);
    tg_program_free(prog);
    free(env);
    free(text);
    grad_free(&o);
    return rc;
}
