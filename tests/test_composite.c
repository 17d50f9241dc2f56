/* test_composite.c: composite functions written as tgx programs, held to values and gradients
 * computed without tapegrad. Each program of tests/data/composite_refs.inc was written again
 * in Python with mpmath (30 digits), and its gradient is mpmath's high-precision numerical
 * derivative of that independent version (tests/data/composite_refs.py says how to
 * regenerate it). The programs mix the elementwise math, comparisons and where, minimum and
 * maximum, min and prod, indexing, concat, stack, take, permute and 1-D matmul. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>

#include "tapegrad.h"

#include "support/helpers.h"

#define MAX_INPUTS 3

typedef struct ref_input {
    const char *name;
    int rank;
    size_t shape[TG_MAX_RANK];
    double value[12];
    double grad[12];
} ref_input;

typedef struct ref_case {
    const char *program;
    double value;
    int n;
    ref_input in[MAX_INPUTS];
} ref_case;

static const ref_case CASES[] = {
#include "data/composite_refs.inc"
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static size_t numel(const ref_input *r)
{
    size_t n = 1;
    for (int d = 0; d < r->rank; d++)
        n *= r->shape[d];
    return n;
}

ParameterizedTestParameters(composite, matches_reference)
{
    static size_t idx[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_CASES);
}

ParameterizedTest(size_t *which, composite, matches_reference)
{
    const ref_case *c = &CASES[*which];
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse(c->program, &prog), TG_OK, "%s: %s", c->program, tg_last_error());
    tg_tensor *leaf[MAX_INPUTS] = {NULL};
    tg_binding env[MAX_INPUTS];
    for (int i = 0; i < c->n; i++) {
        const ref_input *r = &c->in[i];
        leaf[i] = tg_tensor_from_f64(TG_F64, r->rank, r->shape, r->value);
        cr_assert(leaf[i] && tg_tensor_set_requires_grad(leaf[i], true) == TG_OK);
        env[i] = (tg_binding){r->name, leaf[i]};
    }
    tg_tape *tape = tg_tape_new();
    cr_assert(tape);
    tg_tensor *f = tg_program_eval(prog, tape, TG_F64, env, (size_t)c->n, NULL);
    cr_assert(f, "%s: %s", c->program, tg_last_error());
    ts_assert_close(tg_tensor_item(f), c->value, 1e-13, 1e-13, "%s: value", c->program);
    cr_assert_eq(tg_backward(tape, f), TG_OK, "%s: backward: %s", c->program, tg_last_error());
    for (int i = 0; i < c->n; i++) {
        const ref_input *r = &c->in[i];
        for (size_t k = 0; k < numel(r); k++)
            ts_assert_close(tg_tensor_grad_get(leaf[i], k), r->grad[k], 1e-11, 1e-11,
                            "%s: d/d%s[%zu]", c->program, r->name, k);
    }
    tg_tape_free(tape);
    for (int i = 0; i < c->n; i++)
        tg_tensor_free(leaf[i]);
    tg_program_free(prog);
}

/* A few dozen, as promised; a table that shrank by accident fails here. */
Test(composite, there_are_enough_programs)
{
    cr_expect_geq(N_CASES, 30, "only %zu composite programs", N_CASES);
}
