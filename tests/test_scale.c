/* test_scale.c: scale and endurance (label "slow": seconds, and gigabytes for the long tape).
 *
 *  - A tape of 10 million nodes, a chain y = tanh(y * w + b) of 0-d f64 scalars, records and
 *    backpropagates within a memory bound: a peak resident set (VmHWM) of at most
 *    BYTES_PER_NODE per node plus a fixed allowance, and an arena capacity of at most
 *    ARENA_PER_NODE per node. Backward walks the array in reverse, without recursion, and its
 *    gradient matches one carried alongside in forward mode.
 *  - A training step (an MLP's forward pass, cross-entropy, backward, an Adam step, zeroing
 *    the gradients, a tape reset) repeated a million times allocates nothing after the first
 *    step (counted through the allocator hook) and keeps the resident set flat. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/alloc.h"
#include "support/helpers.h"
#include "core/detmath.h" /* tg__tanh */

/* Memory per recorded node: a 128-byte header, a 0-d value and its gradient (16 bytes each
 * in the arena) and an 8-byte pointer in the node table: 168 bytes actually touched, which
 * the peak resident set must stay within (with a little slack, plus a fixed allowance for
 * the process). The arena reserves blocks by doubling, so its capacity may reach twice what
 * is used (pages reserved but never touched are not resident). */
#define BYTES_PER_NODE 200
#define ARENA_PER_NODE 320
#define FIXED_ALLOWANCE ((size_t)64 << 20)

/* A field of /proc/self/status in bytes ("VmHWM" is the peak resident set), or 0. */
static size_t proc_status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0, n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kb = strtoull(line + n + 1, NULL, 10);
    fclose(f);
    return kb * 1024;
}

Test(scale, ten_million_node_tape, .timeout = 600)
{
    const size_t iters = 3333334; /* three nodes each: mul, add, tanh */
    tg_tensor *w = ts_scalar(TG_F64, 0.9, true), *b = ts_scalar(TG_F64, 0.1, true);
    tg_tensor *y0 = ts_scalar(TG_F64, 0.5, true);
    size_t rss_before = proc_status_bytes("VmRSS");

    tg_tape *tape = tg_tape_new();
    tg_tensor *y = y0;
    /* Forward mode alongside: dy/dw, dy/db and dy/dy0, in plain doubles. */
    double v = 0.5, dw = 0, db = 0, dy0 = 1;
    for (size_t i = 0; i < iters; i++) {
        y = tg_tanh(tape, tg_add(tape, tg_mul(tape, y, w), b));
        double z = v * 0.9 + 0.1, t = tg__tanh(z), s = 1 - t * t;
        dw = s * (v + 0.9 * dw);
        db = s * (1 + 0.9 * db);
        dy0 = s * 0.9 * dy0;
        v = t;
    }
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    size_t nodes = tg_tape_size(tape);
    cr_assert_geq(nodes, 10000000);
    cr_assert_eq(tg_tensor_item(y), v, "the recorded values are the plain ones");
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    ts_assert_close(tg_tensor_grad_get(w, 0), dw, 0, 1e-9, "dw");
    ts_assert_close(tg_tensor_grad_get(b, 0), db, 0, 1e-9, "db");
    /* 0.9^n times the derivative of tanh underflows to 0 long before the chain's start. */
    cr_assert_eq(tg_tensor_grad_get(y0, 0), dy0);

    size_t arena = tg_tape_arena_capacity(tape);
    size_t peak = proc_status_bytes("VmHWM");
    cr_assert_leq(arena, nodes * ARENA_PER_NODE, "%zu bytes of arena for %zu nodes", arena,
                  nodes);
    if (peak) /* no /proc: the arena bound above still holds */
        cr_assert_leq(peak, rss_before + nodes * BYTES_PER_NODE + FIXED_ALLOWANCE,
                      "peak RSS %zu MiB for %zu nodes", peak >> 20, nodes);
    fprintf(stderr,
            "scale: %zu nodes recorded and differentiated; arena %.1f MiB (%.1f bytes per "
            "node, bound %d), peak RSS %.1f MiB (%.1f bytes per node; bound %d bytes per "
            "node + %zu MiB)\n",
            nodes, (double)arena / 1048576, (double)arena / (double)nodes, ARENA_PER_NODE,
            (double)peak / 1048576, (double)(peak - rss_before) / (double)nodes,
            BYTES_PER_NODE, FIXED_ALLOWANCE >> 20);

    /* Reset keeps the memory: once both generations' header arenas have seen a recording,
     * recording again allocates nothing. (The hook is installed only around the recording;
     * everything is freed with the allocator it was made with.) */
    for (int round = 0; round < 3; round++) {
        tg_tape_reset(tape);
        if (round == 2)
            ts_alloc_install();
        y = y0;
        for (size_t i = 0; i < 1000; i++)
            y = tg_tanh(tape, tg_add(tape, tg_mul(tape, y, w), b));
        cr_assert_not_null(y);
    }
    cr_assert_eq(ts_alloc.allocs, 0, "%zu allocations after a reset", ts_alloc.allocs);
    ts_alloc_uninstall();
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(y0);
}

/* ---- endurance ----------------------------------------------------------------------------- */

#define STEPS 1000000
#define BATCH 4

Test(endurance, a_million_training_steps, .timeout = 900)
{
    /* Everything, from the first object on, is made under the counting hook. */
    ts_alloc_install();
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = 3;
    spec.sizes[1] = 5;
    spec.sizes[2] = 2;
    spec.act[0] = TG_ACT_TANH;
    spec.act[1] = TG_ACT_IDENTITY;
    spec.dtype = TG_F32;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_model *model = NULL;
    cr_assert_eq(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &model), TG_OK);
    tg_tensor *params[4];
    for (size_t i = 0; i < 4; i++)
        params[i] = tg_model_param(model, i);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = 1e-3;
    tg_optim *optim = NULL;
    cr_assert_eq(tg_optim_new(&opt, params, 4, &optim), TG_OK);
    /* A fixed batch: class 1 when x0 + x1 > x2. */
    float xb[BATCH * 3], yb[BATCH];
    for (int i = 0; i < BATCH; i++) {
        for (int j = 0; j < 3; j++)
            xb[i * 3 + j] = (float)(2 * tg_rng_uniform(&rng) - 1);
        yb[i] = xb[i * 3] + xb[i * 3 + 1] > xb[i * 3 + 2] ? 1.0f : 0.0f;
    }
    const size_t xs[2] = {BATCH, 3}, ys[1] = {BATCH};
    tg_tensor *x = tg_tensor_wrap(TG_F32, 2, xs, xb), *y = tg_tensor_wrap(TG_F32, 1, ys, yb);
    tg_tape *tape = tg_tape_new();
    cr_assert(model && optim && x && y && tape);

    size_t allocs_after_first = 0, rss_early = 0;
    long long live_after_first = 0;
    double first_loss = 0, loss_value = 0;
    for (long step = 0; step < STEPS; step++) {
        tg_tensor *loss = tg_cross_entropy(tape, tg_model_forward(tape, model, x), y);
        if (!loss || tg_backward(tape, loss) != TG_OK || tg_optim_step(optim) != TG_OK)
            cr_assert_fail("step %ld: %s", step, tg_last_error());
        loss_value = tg_tensor_item(loss);
        tg_model_zero_grad(model);
        tg_tape_reset(tape);
        if (step == 0) {
            allocs_after_first = ts_alloc.allocs;
            live_after_first = ts_alloc.live;
            first_loss = loss_value;
        } else if (step == 1000) {
            rss_early = proc_status_bytes("VmRSS");
        }
    }
    size_t rss_late = proc_status_bytes("VmRSS");
    cr_assert_eq(ts_alloc.allocs, allocs_after_first, "%zu allocations in %d steps after the first",
                 ts_alloc.allocs - allocs_after_first, STEPS - 1);
    cr_assert_eq(ts_alloc.live, live_after_first);
    /* The resident set may wobble by a page or two, not grow with the step count. */
    cr_assert_leq(rss_late, rss_early + (256 << 10), "RSS %zu KiB after 1000 steps, %zu KiB "
                  "after %d", rss_early >> 10, rss_late >> 10, STEPS);
    cr_assert_lt(loss_value, first_loss, "training made progress");
    fprintf(stderr,
            "endurance: %d training steps, %zu allocations in all (every one in the first step), "
            "RSS %zu KiB after 1000 steps and %zu KiB at the end, loss %.3g -> %.3g\n",
            STEPS, allocs_after_first, rss_early >> 10, rss_late >> 10, first_loss, loss_value);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_optim_free(optim);
    tg_model_free(model);
    cr_assert_eq(ts_alloc.live, 0, "%lld blocks leaked", ts_alloc.live);
    ts_alloc_uninstall();
}
