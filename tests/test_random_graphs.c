/* test_random_graphs.c: a property test over the op table. Thousands of seeded random graphs,
 * each a random sequence of the table's ops over a few inputs and constants of random shapes,
 * with broadcasting, fan-out (values reused) and long chains; every gradient is checked against
 * central finite differences in f64 (tg_gradcheck).
 *
 * A graph is a list of values, each an input or an op of the table over earlier values,
 * recorded through tg_apply (constants through tg_constant, the custom op, xtanh, through
 * tg_custom). How a step applies an op is its entry in GENERATORS, keyed by tg_op: a function
 * that adds it onto an operand (with a partner, attributes and the guards its domain needs)
 * and how often a step draws it. An op without an
 * entry fails every_op_has_a_generator; one never drawn fails a run of 1000 graphs or more.
 *
 * Graphs stay where finite differences are meaningful: log, sqrt, division and fractional or
 * negative powers see positive operands (a guard x^2 + c recorded in the graph), and so do the
 * bases of pow_tensor; acosh one
 * above 1 (x^2 + c + 1), asin, acos, atanh, log1p and tan one inside their domain (r tanh x,
 * r = 0.9, or 1.3 for tan); exp, expm1, sinh, cosh, square and log_sigmoid see bounded ones,
 * and so do sin and cos (of a large, steep value they would make a bounded one of huge
 * curvature); a graph that puts an operand of relu, abs, sign, clamp, max or min within 1e-3
 * of a kink, one of floor or ceil within 1e-3 of an integer, the operands of minimum, maximum
 * or a comparison within 1e-3 of a tie, or atan2 near its origin or its jump, is drawn again; and detach appears
 * only as a + (detach(a) - detach(a)), since a detached value that changes the function makes
 * finite differences and backward disagree by design.
 *
 * Each graph is also printed as a tgx program (docs/tgx.md), every op a call of its function,
 * which is evaluated to check that it is the same function; the first few are replayed with
 * `tapegrad grad --check`, and a failing one is printed with its seed as that command line.
 * TG_RANDOM_GRAPHS=N sets how many graphs to check (default 3000), TG_RANDOM_SEED the first
 * seed.
 *
 * The parts (tests/random_graphs/, built into this test): graph.c (recording), tgx.c (the
 * program and the command line), gen.c (the generators' helpers), gen_elementwise.c,
 * gen_binary.c, gen_index.c (the generators by family); random_graphs.h declares what they
 * share. Here: the GENERATORS table, drawing and generating a graph, and the tests. */
#include "random_graphs/random_graphs.h"

#include <stdio.h>
#include <stdlib.h>

#include "support/proc.h"

static tg_tensor *check_fn(tg_tape *tape, tg_tensor *const *xs, size_t n, void *ud)
{
    (void)n;
    static tg_tensor *t[MAX_VALUES];
    return record(tape, ud, xs, t);
}

typedef struct generator {
    void (*add)(gen *s, tg_op op, int a);
    int any, chain;
    double limit;
} generator;

/* Deep chains are made of the ops that keep values in range (bounded unary ops, scale and
 * add_scalar, the elementwise binary ops); wide graphs draw every op. */
static const generator GENERATORS[TG_OP_COUNT] = {
    /*                    add             any  chain  limit */
    [TG_OP_CONST]       = {gen_const,       1,   0},
    [TG_OP_DETACH]      = {gen_detach,      2,   0},
    [TG_OP_ADD]         = {gen_binary,      2,   2},
    [TG_OP_SUB]         = {gen_binary,      2,   2},
    [TG_OP_MUL]         = {gen_mul,         4,   4},
    [TG_OP_DIV]         = {gen_binary,      2,   2},
    [TG_OP_NEG]         = {gen_plain,       2,   2},
    [TG_OP_SCALE]       = {gen_scalar,      2,   2},
    [TG_OP_ADD_SCALAR]  = {gen_scalar,      2,   2},
    [TG_OP_POW]         = {gen_pow,         2,   0},
    [TG_OP_SQUARE]      = {gen_plain,       2,   0,  100},
    [TG_OP_SQRT]        = {gen_positive,    1,   0},
    [TG_OP_EXP]         = {gen_plain,       2,   0,    4},
    [TG_OP_LOG]         = {gen_positive,    1,   0},
    [TG_OP_ABS]         = {gen_kink,        1,   0},
    [TG_OP_SIGMOID]     = {gen_plain,       1,   1},
    [TG_OP_TANH]        = {gen_plain,       1,   1},
    [TG_OP_RELU]        = {gen_kink,        1,   0},
    [TG_OP_LOG_SIGMOID] = {gen_plain,       2,   2,   30},
    [TG_OP_CLAMP]       = {gen_clamp,       2,   0},
    [TG_OP_MATMUL]      = {gen_matmul,      2,   0},
    [TG_OP_TRANSPOSE]   = {gen_transpose,   2,   0},
    [TG_OP_RESHAPE]     = {gen_reshape,     2,   0},
    [TG_OP_SUM]         = {gen_axis,        2,   0},
    [TG_OP_MEAN]        = {gen_axis,        2,   0},
    [TG_OP_MAX]         = {gen_max,         2,   0},
    [TG_OP_LOGSUMEXP]   = {gen_axis,        2,   0},
    [TG_OP_SOFTMAX]     = {gen_axis,        2,   0},
    [TG_OP_LOG_SOFTMAX] = {gen_axis,        2,   0},
    /* elementwise math */
    [TG_OP_SIN]         = {gen_plain,       1,   1,    4},
    [TG_OP_COS]         = {gen_plain,       1,   1,    4},
    [TG_OP_TAN]         = {gen_interval,    1,   0},
    [TG_OP_ASIN]        = {gen_interval,    1,   0},
    [TG_OP_ACOS]        = {gen_interval,    1,   0},
    [TG_OP_ATAN]        = {gen_plain,       1,   1},
    [TG_OP_SINH]        = {gen_plain,       1,   0,    5},
    [TG_OP_COSH]        = {gen_plain,       1,   0,    5},
    [TG_OP_ASINH]       = {gen_plain,       1,   1},
    [TG_OP_ACOSH]       = {gen_above1,      1,   0},
    [TG_OP_ATANH]       = {gen_interval,    1,   0},
    [TG_OP_EXPM1]       = {gen_plain,       1,   0,    4},
    [TG_OP_LOG1P]       = {gen_interval,    1,   0},
    [TG_OP_ERF]         = {gen_plain,       1,   1},
    [TG_OP_SOFTPLUS]    = {gen_plain,       1,   1},
    [TG_OP_GELU]        = {gen_plain,       1,   1},
    [TG_OP_SILU]        = {gen_plain,       1,   1},
    [TG_OP_SIGN]        = {gen_kink,        1,   0},
    [TG_OP_FLOOR]       = {gen_steps,       1,   0},
    [TG_OP_CEIL]        = {gen_steps,       1,   0},
    [TG_OP_SLICE]       = {gen_slice,       2,   0},
    [TG_OP_SELECT]      = {gen_select,      2,   0},
    [TG_OP_CONCAT]      = {gen_join,        2,   0},
    [TG_OP_STACK]       = {gen_join,        1,   0},
    [TG_OP_TAKE]        = {gen_take,        2,   0},
    [TG_OP_INDEX_ADD]   = {gen_take,        2,   0},
    [TG_OP_PERMUTE]     = {gen_permute,     2,   0},
    [TG_OP_MINIMUM]     = {gen_minmax,      2,   1},
    [TG_OP_MAXIMUM]     = {gen_minmax,      2,   1},
    [TG_OP_ATAN2]       = {gen_atan2,       2,   0},
    [TG_OP_POW_TENSOR]  = {gen_pow_tensor,  2,   0},
    [TG_OP_LT]          = {gen_compare,     1,   0},
    [TG_OP_LE]          = {gen_compare,     1,   0},
    [TG_OP_GT]          = {gen_compare,     1,   0},
    [TG_OP_GE]          = {gen_compare,     1,   0},
    [TG_OP_EQ]          = {gen_compare,     1,   0},
    [TG_OP_NE]          = {gen_compare,     1,   0},
    [TG_OP_WHERE]       = {gen_where,       2,   0},
    [TG_OP_MIN]         = {gen_max,         2,   0},
    [TG_OP_PROD]        = {gen_prod,        2,   0,    2},
    [TG_OP_CUSTOM]      = {gen_plain,       1,   1},  /* XTANH (above) */
};

/* An op drawn by the weights of a wide graph's step or of a chain's. */
static tg_op draw(gen *s, bool chain)
{
    int w[TG_OP_COUNT], total = 0, op = 0;
    for (int i = 0; i < TG_OP_COUNT; i++)
        total += w[i] = chain ? GENERATORS[i].chain : GENERATORS[i].any;
    for (int r = below(s, total); (r -= w[op]) >= 0;)
        op++;
    return (tg_op)op;
}

/* One random step: an op applied onto the newest value (a chain) or any earlier one. */
static void step(gen *s, bool chain)
{
    int a = chain ? s->g->n - 1 : pick(s);
    tg_op op = draw(s, chain);
    const generator *e = &GENERATORS[op];
    if (e->limit > 0 && !(max_abs(s->t[a]) < e->limit))
        return;
    e->add(s, op, a);
}

/* Builds graph g from its seed; false when it was rejected (near a kink, out of bounds). */
static bool generate(graph *g, tg_tape *tape)
{
    gen s;
    memset(&s, 0, sizeof s);
    s.g = g;
    s.tape = tape;
    tg_rng_seed(&s.rng, g->seed);
    int rank;
    size_t shape[TG_MAX_RANK];
    random_shape(&s, &rank, shape);
    new_leaf(&s, rank, shape, false);
    int n_in = below(&s, 3);
    for (int i = 0; i < n_in; i++) {
        int r2;
        size_t s2[TG_MAX_RANK];
        if (below(&s, 2))
            broadcast_partner(&s, rank, shape, &r2, s2);
        else
            random_shape(&s, &r2, s2);
        new_leaf(&s, r2, s2, false);
    }
    /* One graph in eight is a long chain; the rest are short and wide. */
    bool deep = below(&s, 8) == 0;
    int steps = deep ? 60 + below(&s, 140) : 3 + below(&s, 15);
    for (int i = 0; i < steps && !s.rejected && g->n < MAX_VALUES - 8; i++)
        step(&s, deep && below(&s, 5) != 0);
    /* The output: a scalar that every unused value (every sink of the graph) flows into, each
     * as sum(y * C) with C a random constant, so that every element's gradient is checked
     * with a different weight and the program replays as is. */
    int last = g->n;
    bool used[MAX_VALUES] = {false};
    for (int i = 0; i < last; i++) {
        if (g->v[i].a >= 0)
            used[g->v[i].a] = true;
        if (g->v[i].b >= 0)
            used[g->v[i].b] = true;
        for (int k = 0; k < MAX_JOIN - 2; k++)
            if (g->v[i].more[k] >= 0)
                used[g->v[i].more[k]] = true;
    }
    int total = -1;
    for (int i = 0; i < last && !s.rejected; i++) {
        if (used[i] || g->v[i].op == INPUT || g->v[i].op == TG_OP_CONST)
            continue;
        int y = i;
        tg_tensor *ty = s.t[y];
        if (tg_tensor_numel(ty) > 1) {
            int c = new_leaf(&s, tg_tensor_rank(ty), tg_tensor_shape(ty), true);
            y = apply(&s, TG_OP_SUM, apply(&s, TG_OP_MUL, y, c), -1);
        } else if (tg_tensor_rank(ty) > 0) {
            y = apply(&s, TG_OP_SUM, y, -1);
        }
        total = total < 0 ? y : apply(&s, TG_OP_ADD, total, y);
    }
    if (total < 0 || s.rejected || !tg_tensor_requires_grad(s.t[g->n - 1]))
        s.rejected = true; /* nothing to differentiate */
    return !s.rejected;
}

static void free_graph(graph *g)
{
    for (int i = 0; i < g->n_inputs; i++)
        tg_tensor_free(g->inputs[i]);
    g->n_inputs = 0;
}

/* The tgx program evaluates to the same value as the C graph. */
static void assert_replays(const graph *g, const char *prog, double want)
{
    tg_program *p = NULL;
    cr_assert_eq(tg_program_parse(prog, &p), TG_OK, "seed %llu: %s\n%s",
                 (unsigned long long)g->seed, tg_last_error(), prog);
    tg_binding env[MAX_INPUTS];
    char names[MAX_INPUTS][16];
    for (int i = 0; i < g->n_inputs; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        env[i] = (tg_binding){names[i], g->inputs[i]};
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_program_eval(p, tape, TG_F64, env, (size_t)g->n_inputs, NULL);
    cr_assert_not_null(y, "seed %llu: %s", (unsigned long long)g->seed, tg_last_error());
    double got = tg_tensor_item(y);
    ts_assert_close(got, want, 1e-9, 1e-9,
                    "seed %llu: the tgx program (got)\n%s\nagainst the graph",
                    (unsigned long long)g->seed, prog);
    tg_tape_free(tape);
    tg_program_free(p);
}

/* The command replays the graph: `tapegrad grad --check` passes. */
static void replay_with_the_command(const graph *g, const char *prog)
{
    char **args = replay_args(g, prog);
    tp_run run = tp_tapegrad((const char *const *)args, NULL);
    cr_assert_eq(run.status, 0, "seed %llu: the replay failed (status %d):\n%s\nstdout:\n%s\n"
                 "stderr:\n%s", (unsigned long long)g->seed, run.status, command_line(args),
                 run.out, run.err);
    tp_run_free(&run);
    free_args(args);
}

static size_t env_count(const char *name, size_t fallback)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return fallback;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    cr_assert(*end == '\0', "%s must be a number, not '%s'", name, s);
    return (size_t)v;
}

/* An op added to the table needs a way into the random graphs: an entry in GENERATORS that a
 * step draws. */
Test(random_graphs, every_op_has_a_generator)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const generator *e = &GENERATORS[op];
        cr_expect(e->add != NULL, "op %s (%d) has no generator in GENERATORS",
                  tg_op_name((tg_op)op), op);
        cr_expect(e->add == NULL || e->any > 0,
                  "op %s (%d) has a generator of weight 0: no step draws it",
                  tg_op_name((tg_op)op), op);
    }
}

Test(random_graphs, gradients_match_finite_differences, .timeout = 600)
{
    size_t want = env_count("TG_RANDOM_GRAPHS", 3000);
    uint64_t seed = env_count("TG_RANDOM_SEED", 1);
    static graph g;
    tg_tape *tape = tg_tape_new();
    size_t checked = 0, rejected = 0, nodes = 0, deep = 0, retried = 0, replayed = 0;
    size_t counts[TG_OP_COUNT] = {0};
    double worst = 0;
    uint64_t worst_seed = 0;
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.tol = TOL;
    for (; checked < want; seed++) {
        memset(&g, 0, offsetof(graph, pool));
        g.seed = seed;
        bool ok = generate(&g, tape);
        if (!ok) {
            rejected++;
            free_graph(&g);
            continue;
        }
        static tg_tensor *t[MAX_VALUES];
        tg_tape_reset(tape);
        tg_tensor *y = record(tape, &g, g.inputs, t);
        cr_assert_not_null(y);
        char *prog = to_tgx(&g, t);
        assert_replays(&g, prog, tg_tensor_item(y));

        /* Central differences err by about h^2 |f'''| / 6 + 1e-16 |f| / h: in a graph of high
         * curvature (deep products) the default step can miss by a little more than the
         * tolerance. A wrong gradient is wrong at every step, so a failure is retried with a
         * larger and a smaller one, and only a miss at all three counts. */
        static const double steps[3] = {1e-6, 1e-5, 1e-7};
        double err[MAX_INPUTS] = {0};
        tg_status st = TG_ENUMERIC;
        for (int k = 0; k < 3 && st == TG_ENUMERIC; k++) {
            opt.eps = steps[k];
            retried += k > 0;
            st = tg_gradcheck(check_fn, &g, g.inputs, (size_t)g.n_inputs, &opt, err);
        }
        if (st != TG_OK) {
            cr_assert_fail("seed %llu: %s (%s)\nerrors (step 1e-7): x0 %g x1 %g x2 %g\n"
                           "program:\n%s\n"
                           "replay:\n%s",
                           (unsigned long long)seed, tg_status_name(st), tg_last_error(),
                           err[0], err[1], err[2], prog, command_line(replay_args(&g, prog)));
        }
        if (replayed < 5) {
            replay_with_the_command(&g, prog);
            replayed++;
        }
        for (int i = 0; i < g.n_inputs; i++)
            if (err[i] > worst)
                worst = err[i], worst_seed = seed;
        for (int i = 0; i < g.n; i++)
            if (g.v[i].op != INPUT)
                counts[g.v[i].op]++;
        nodes += tg_tape_size(tape);
        deep += tg_tape_size(tape) > 60;
        free(prog);
        free_graph(&g);
        checked++;
    }
    tg_tape_free(tape);
    /* Every op of the table was drawn. */
    for (int op = 0; op < TG_OP_COUNT && want >= 1000; op++)
        cr_assert_gt(counts[op], 0, "no graph used %s", tg_op_name((tg_op)op));
    fprintf(stderr,
            "random graphs: %zu checked (seeds from %llu; %zu drawn again near a kink or "
            "out of bounds), %zu recorded nodes, %zu graphs deeper than 60 nodes, largest "
            "error %.3g (seed %llu), tolerance %g, %zu checks retried with another step, "
            "%zu replayed with the command\n",
            checked, (unsigned long long)(seed - checked - rejected), rejected, nodes, deep,
            worst, (unsigned long long)worst_seed, TOL, retried, replayed);
}
