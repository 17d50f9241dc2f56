/* cmd_minimize.c: `tapegrad minimize`, a scalar tgx program minimized over its inputs by
 * tg_minimize (tapegrad/minimize.h): L-BFGS, Newton or gradient descent. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MINIMIZE_USAGE[] =
    "usage: tapegrad minimize [options] PROGRAM NAME=VALUE ... [--const NAME=VALUE ...]\n"
    "       tapegrad minimize [options] -f FILE NAME=VALUE ...\n"
    "\n"
    "Minimizes a tgx program whose output is a single value over its NAME=VALUE inputs,\n"
    "starting from the values given, and prints the minimum and where it is. One line per\n"
    "iteration goes to stderr.\n"
    "\n"
    "  NAME=VALUE          an input to minimize over, and its start (a number or a nested list)\n"
    "  --const NAME=VALUE  an input held fixed (data, targets)\n"
    "  -f FILE             read the program from FILE ('-' for stdin; at most 16 MiB)\n"
    "  --method M          lbfgs (default): L-BFGS with a strong Wolfe line search;\n"
    "                      newton: the exact Hessian, damped until positive definite, with\n"
    "                      backtracking; gd: plain gradient descent at the rate --lr\n"
    "  --max-iter N        iterations at most (default 1000)\n"
    "  --tol X             converged when the gradient's Euclidean norm is <= X (default 1e-8)\n"
    "  --lr X              gd's learning rate (default 1e-3)\n"
    "  --memory M          L-BFGS's correction pairs (default 10)\n"
    "  --json              print one JSON object {\"value\", \"x\": {NAME: value, ...},\n"
    "                      \"iterations\", \"converged\", \"method\", \"grad_norm\", \"stop\",\n"
    "                      \"evaluations\", \"grad_evaluations\", \"hessian_evaluations\"}\n"
    "  -q, --quiet         no progress lines\n"
    "  -h, --help          show this help\n"
    "\n"
    "A program that starts with '-' goes after '--'. The program is evaluated in f64.\n"
    "\n"
    "Exit status: 0 converged; 1 not converged (the result is printed all the same, with the\n"
    "reason), a program error or an unreadable file; 2 bad usage.\n"
    "\n"
    "Example (Rosenbrock's minimum at (1, 1)):\n"
    "  tapegrad minimize '(1 - x)^2 + 100*(y - x^2)^2' x=-1.2 y=1\n";

typedef struct min_input {
    char *name;       /* malloc'd */
    const char *text; /* VALUE, inside the argument */
    bool is_const;
    tg_tensor *leaf;
} min_input;

typedef struct min_opts {
    bool json, quiet;
    const char *file, *program;
    tg_minimize_options mo;
    min_input *in;
    size_t n_in;
    const char **positional;
    size_t n_positional;
} min_opts;

/* What the objective needs: the program, and the bindings with the leaves tg_minimize moves
 * (the differentiable inputs arrive as x[], in the order of env's non-const entries). */
typedef struct objective {
    const tg_program *prog;
    const min_opts *o;
    tg_binding *env;
    tg_expr_error err; /* the program's error, when it fails */
    bool failed;
} objective;

static tg_tensor *objective_fn(tg_tape *tape, tg_tensor *const *x, size_t n, void *ud)
{
    objective *c = ud;
    size_t j = 0;
    for (size_t i = 0; i < c->o->n_in; i++) {
        const min_input *in = &c->o->in[i];
        c->env[i] = (tg_binding){in->name, in->is_const ? in->leaf : x[j++]};
    }
    (void)n; /* tg_minimize passes the differentiable inputs, whose count is known */
    tg_tensor *y = tg_program_eval(c->prog, tape, TG_F64, c->env, c->o->n_in, &c->err);
    c->failed = !y;
    return y;
}

static void progress(const tg_minimize_iter *it, void *ud)
{
    (void)ud;
    fprintf(stderr, "iter %4d  f = %-18.10g |g| = %.3e  step = %.3e  evals %d", it->iteration,
            it->value, it->grad_norm, it->step, it->evaluations);
    if (it->damping > 0)
        fprintf(stderr, "  damping %.3g", it->damping);
    fputc('\n', stderr);
}

static void opts_free(min_opts *o)
{
    for (size_t i = 0; o->in && i < o->n_in; i++) {
        free(o->in[i].name);
        tg_tensor_free(o->in[i].leaf);
    }
    free(o->in);
    free(o->positional);
}

static int add_input(min_opts *o, const char *arg, bool is_const)
{
    min_input *in = &o->in[o->n_in];
    memset(in, 0, sizeof *in);
    int st = split_binding("minimize", arg, &in->name, &in->text);
    if (st != EXIT_OK)
        return st;
    o->n_in++;
    for (size_t i = 0; i + 1 < o->n_in; i++)
        if (strcmp(o->in[i].name, in->name) == 0)
            return usage_error("minimize", "'%s' is bound twice", in->name);
    in->is_const = is_const;
    return EXIT_OK;
}

/* A whole-string finite number > lo (or >= lo when or_equal). */
static bool parse_number(const char *v, double lo, bool or_equal, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d))
        return false;
    if (!(or_equal ? d >= lo : d > lo))
        return false;
    *out = d;
    return true;
}

static int parse_args(int argc, char **argv, min_opts *o)
{
    o->in = calloc((size_t)argc + 1, sizeof *o->in);
    o->positional = calloc((size_t)argc + 1, sizeof *o->positional);
    if (!o->in || !o->positional) {
        complain("minimize", "out of memory");
        return EXIT_FAIL;
    }
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (take_positional(a, &only_positional, o->positional, &o->n_positional))
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(MINIMIZE_USAGE, stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            *(a[2] == 'j' ? &o->json : &o->quiet) = true;
            continue;
        }
        static const char *const with_value[] = {"--method", "--max-iter", "--tol", "--lr",
                                                 "--memory", "--const",    "-f"};
        const char *opt;
        int got = take_valued_option("minimize", argc, argv, &i, with_value,
                                     sizeof with_value / sizeof *with_value,
                                     !o->n_positional && !o->file, &opt, &v);
        if (got != EXIT_OK)
            return got;
        unsigned long long count; /* counts are decimal digits, as train's --epochs */
        if (strcmp(opt, "--method") == 0) {
            if (!tg_minimize_method_parse(v, &o->mo.method))
                return usage_error("minimize", "--method must be lbfgs, newton or gd, not '%s'", v);
        } else if (strcmp(opt, "--max-iter") == 0) {
            if (!parse_size(v, 1000000000, &count))
                return usage_error("minimize",
                                   "--max-iter must be an integer 0 to 1000000000, "
                                   "not '%s'",
                                   v);
            o->mo.max_iter = (int)count;
        } else if (strcmp(opt, "--memory") == 0) {
            if (!parse_size(v, 1000000, &count) || count == 0)
                return usage_error("minimize", "--memory must be an integer 1 to 1000000, not '%s'",
                                   v);
            o->mo.memory = (int)count;
        } else if (strcmp(opt, "--tol") == 0) {
            if (!parse_number(v, 0, true, &o->mo.tol))
                return usage_error("minimize", "--tol must be a number >= 0, not '%s'", v);
        } else if (strcmp(opt, "--lr") == 0) {
            if (!parse_number(v, 0, false, &o->mo.lr))
                return usage_error("minimize", "--lr must be a number > 0, not '%s'", v);
        } else if (strcmp(opt, "--const") == 0) {
            int st = add_input(o, v, true);
            if (st != EXIT_OK)
                return st;
        } else {
            o->file = v;
        }
    }
    size_t first = 0;
    if (!o->file) {
        if (o->n_positional == 0)
            return usage_error("minimize", "no program given");
        o->program = o->positional[0];
        first = 1;
    }
    for (size_t i = first; i < o->n_positional; i++) {
        int st = add_input(o, o->positional[i], false);
        if (st != EXIT_OK)
            return st;
    }
    size_t n_var = 0;
    for (size_t i = 0; i < o->n_in; i++)
        n_var += !o->in[i].is_const;
    if (n_var == 0)
        return usage_error("minimize", "nothing to minimize over: give a start NAME=VALUE");
    return EXIT_OK;
}

static void print_json(const min_opts *o, const tg_minimize_result *r, dense *x)
{
    FILE *f = stdout;
    fputs("{\"value\": ", f);
    json_number(f, r->value);
    fputs(", \"x\": {", f);
    for (size_t i = 0, j = 0; i < o->n_in; i++) {
        if (o->in[i].is_const)
            continue;
        fputs(j ? ", " : "", f);
        json_string(f, o->in[i].name);
        fputs(": ", f);
        json_dense(f, &x[j++]);
    }
    fprintf(f, "}, \"iterations\": %d, \"converged\": %s, \"method\": ", r->iterations,
            r->converged ? "true" : "false");
    json_string(f, tg_minimize_method_name(o->mo.method));
    fputs(", \"grad_norm\": ", f);
    json_number(f, r->grad_norm);
    fputs(", \"stop\": ", f);
    json_string(f, tg_minimize_stop_name(r->stop));
    fprintf(f, ", \"evaluations\": %d, \"grad_evaluations\": %d, \"hessian_evaluations\": %d}\n",
            r->evaluations, r->grad_evaluations, r->hessian_evaluations);
}

static void print_text(const min_opts *o, const tg_minimize_result *r, dense *x)
{
    FILE *f = stdout;
    char v[32], g[32];
    format_short(v, sizeof v, r->value, TG_F64);
    fprintf(f, "value = %s\n", v);
    for (size_t i = 0, j = 0; i < o->n_in; i++)
        if (!o->in[i].is_const)
            print_dense(f, o->in[i].name, &x[j++]);
    snprintf(g, sizeof g, "%.3g", r->grad_norm);
    fprintf(f, "%s %s after %d iteration%s (%d evaluation%s, %d gradient%s",
            tg_minimize_method_name(o->mo.method), r->converged ? "converged" : "did not converge",
            r->iterations, r->iterations == 1 ? "" : "s", r->evaluations,
            r->evaluations == 1 ? "" : "s", r->grad_evaluations,
            r->grad_evaluations == 1 ? "" : "s");
    if (r->hessian_evaluations)
        fprintf(f, ", %d Hessian%s", r->hessian_evaluations,
                r->hessian_evaluations == 1 ? "" : "s");
    fprintf(f, "), |grad| = %s\n", g);
}

/* Why a run that ended did not converge, for stderr. */
static const char *stop_reason(tg_minimize_stop stop)
{
    switch (stop) {
    case TG_MINIMIZE_MAX_ITER: return "the iteration limit was reached (raise --max-iter)";
    case TG_MINIMIZE_NO_PROGRESS:
        return "no progress (the line search found no lower value, or 10 iterations in a row "
               "lowered neither f nor |grad|): --tol may be below what rounding allows here";
    case TG_MINIMIZE_DIVERGED: return "the run diverged";
    case TG_MINIMIZE_CONVERGED:
    case TG_MINIMIZE_ERROR: break; /* printed as the error itself */
    }
    return "";
}

int cmd_minimize(int argc, char **argv)
{
    min_opts o;
    memset(&o, 0, sizeof o);
    o.mo = (tg_minimize_options)TG_MINIMIZE_OPTIONS_INIT;
    char *text = NULL;
    tg_program *prog = NULL;
    tg_binding *env = NULL;
    tg_tensor **xs = NULL;
    dense *xd = NULL;
    size_t n_var = 0;
    int rc = parse_args(argc, argv, &o);
    if (rc != EXIT_OK) {
        rc = rc < 0 ? EXIT_OK : rc; /* --help */
        goto done;
    }
    for (size_t i = 0; i < o.n_in; i++) {
        min_input *in = &o.in[i];
        if ((rc = parse_value_arg("minimize", in->name, in->text, TG_F64, &in->leaf)) != EXIT_OK)
            goto done;
        if (tg_tensor_set_name(in->leaf, in->name) != TG_OK) {
            complain("minimize", "%s", tg_last_error());
            rc = EXIT_FAIL;
            goto done;
        }
        n_var += !in->is_const;
    }
    rc = EXIT_FAIL;
    size_t len;
    const char *src;
    if (load_program("minimize", o.file, o.program, &text, &src, &len, &prog) != EXIT_OK)
        goto done;
    env = calloc(o.n_in + 1, sizeof *env);
    xs = calloc(n_var + 1, sizeof *xs);
    xd = calloc(n_var + 1, sizeof *xd);
    if (!env || !xs || !xd) {
        complain("minimize", "out of memory");
        goto done;
    }
    for (size_t i = 0, j = 0; i < o.n_in; i++) {
        env[i] = (tg_binding){o.in[i].name, o.in[i].leaf};
        if (!o.in[i].is_const)
            xs[j++] = o.in[i].leaf;
    }
    const char *missing = check_bindings("minimize", prog, env, o.n_in);

    objective obj = {prog, &o, env, {0}, false};
    if (!o.quiet) {
        o.mo.progress = progress;
        fprintf(stderr, "minimize: %s over %zu input%s\n", tg_minimize_method_name(o.mo.method),
                n_var, n_var == 1 ? "" : "s");
    }
    tg_minimize_result r;
    tg_status st = tg_minimize(objective_fn, &obj, xs, n_var, &o.mo, &r);
    if (st != TG_OK) {
        if (obj.failed && obj.err.status != TG_OK)
            report_program_error(&obj.err, src, len, missing, "minimize over it");
        else /* the library's message starts with the command's name already */
            fprintf(stderr, "tapegrad %s\n", tg_last_error());
        if (st != TG_ENUMERIC || r.stop != TG_MINIMIZE_DIVERGED)
            goto done; /* a diverged run still has its last finite point to show */
    }
    for (size_t j = 0; j < n_var; j++)
        if (!dense_from(xs[j], false, &xd[j])) {
            complain("minimize", "out of memory");
            goto done;
        }
    if (o.json)
        print_json(&o, &r, xd);
    else
        print_text(&o, &r, xd);
    fflush(stdout); /* the result, then why it is not converged */
    if (!r.converged && st == TG_OK)
        complain("minimize", "did not converge: %s", stop_reason(r.stop));
    rc = r.converged && st == TG_OK ? EXIT_OK : EXIT_FAIL;
done:
    for (size_t j = 0; xd && j < n_var; j++)
        free(xd[j].v);
    free(xd);
    free(xs);
    free(env);
    tg_program_free(prog);
    free(text);
    opts_free(&o);
    return rc;
}
