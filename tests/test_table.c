/* test_table.c: the op table against everything that must follow it. Each op is one entry
 * (src/ops/table.c); the tape, tgx and the dot writer read it, and so do these tests, which
 * fail when an op is missing from tgx, from docs/tgx.md's function table or from the README's
 * op table, and check the generic entry points (tg_op_info_of, tg_apply, tg_tensor_attrs).
 * (The gradient check and the random graphs have their own coverage tests.) */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/proc.h"
#include "tape/op_desc.h"

/* The text of file `rel` (relative to the source tree) from the line starting with `from` to
 * the next line starting with `to` (or the end); caller frees. */
static char *section(const char *rel, const char *from, const char *to)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", tp_env("TG_SOURCE_DIR"), rel);
    char *text = tp_slurp(path);
    char *start = strstr(text, from);
    cr_assert_not_null(start, "%s has no '%s'", rel, from);
    char *end = strstr(start + strlen(from), to);
    size_t n = end ? (size_t)(end - start) : strlen(start);
    char *out = malloc(n + 1);
    cr_assert_not_null(out);
    memcpy(out, start, n);
    out[n] = '\0';
    free(text);
    return out;
}

/* The constructor of op: tg_NAME, but constants are made with tg_constant. */
static void constructor(tg_op op, char *buf, size_t size)
{
    snprintf(buf, size, "`tg_%s`", op == TG_OP_CONST ? "constant" : tg_op_name(op));
}

Test(table, entries_are_consistent)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const tg_op_info *info = tg_op_info_of((tg_op)op);
        cr_assert_not_null(info, "op %d has no entry", op);
        cr_expect_eq(tg_op__table[op]->op, (tg_op)op, "%s is listed at %d but says it is %d",
                     info->name, op, (int)tg_op__table[op]->op);
        cr_expect(info->name && info->name[0], "op %d has no name", op);
        cr_expect_str_eq(tg_op_name((tg_op)op), info->name);
        cr_expect_eq(tg_op_arity((tg_op)op), info->arity);
        cr_expect((info->arity >= 0 && info->arity <= 3) || info->arity == TG_VARIADIC,
                  "%s: arity %d", info->name, info->arity);
        cr_expect(!info->commutative || info->arity == 2, "%s: commutative with %d input(s)",
                  info->name, info->arity);
        cr_expect(info->differentiable == (tg_op__table[op]->vjp != NULL),
                  "%s: differentiable says %d, its VJP %s", info->name, info->differentiable,
                  tg_op__table[op]->vjp ? "exists" : "is NULL");
        for (int other = 0; other < op; other++)
            cr_expect(strcmp(info->name, tg_op_name((tg_op)other)) != 0,
                      "ops %d and %d are both '%s'", other, op, info->name);
    }
    cr_expect_null(tg_op_info_of(TG_OP_COUNT));
    cr_expect_null(tg_op_info_of((tg_op)-1));
    cr_expect_str_eq(tg_op_name(TG_OP_COUNT), "?");
    cr_expect_eq(tg_op_arity(TG_OP_COUNT), -1);
}

/* Ops that are not tgx functions although they take inputs: a custom op is C callbacks
 * (tg_custom), which a tgx program has no way to name or supply. "custom" is no function. */
static bool c_only(tg_op op)
{
    return op == TG_OP_CUSTOM;
}

Test(table, every_op_is_a_tgx_function)
{
    size_t ops_with_inputs = 0;
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const char *name = tg_op_name((tg_op)op);
        bool has_inputs = tg_op_arity((tg_op)op) != 0 && !c_only((tg_op)op);
        ops_with_inputs += has_inputs;
        cr_expect_eq(tg_expr_is_function(name), has_inputs, "'%s' %s a tgx function", name,
                     has_inputs ? "is not" : "should not be");
    }
    /* tg_expr_function lists those ops first, in table order, then the nn functions; every
     * name it gives is a function, and no name twice. */
    size_t n = 0;
    const char *name;
    for (; (name = tg_expr_function(n)) != NULL; n++) {
        cr_expect(tg_expr_is_function(name), "'%s' is listed but not a function", name);
        for (size_t j = 0; j < n; j++)
            cr_expect(strcmp(name, tg_expr_function(j)) != 0, "'%s' listed twice", name);
    }
    cr_expect_gt(n, ops_with_inputs, "the nn functions follow the ops");
    cr_expect_null(tg_expr_function(n + 1));
}

/* The function table of docs/tgx.md names every function as `name(...)`, and every name it
 * writes so is a function. */
Test(table, docs_list_every_function)
{
    char *doc = section("docs/tgx.md", "## Functions", "\n## ");
    const char *name;
    for (size_t i = 0; (name = tg_expr_function(i)) != NULL; i++) {
        char want[64];
        snprintf(want, sizeof want, "`%s(", name);
        cr_expect(strstr(doc, want) != NULL, "docs/tgx.md's function table lacks %s...)`",
                  want);
    }
    size_t listed = 0;
    for (const char *p = doc; (p = strchr(p, '`')) != NULL; p++) {
        size_t n = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
        if (n == 0 || p[1 + n] != '(')
            continue;
        char word[64];
        cr_assert_lt(n, sizeof word);
        memcpy(word, p + 1, n);
        word[n] = '\0';
        cr_expect(tg_expr_is_function(word), "docs/tgx.md lists `%s(`, which is no function",
                  word);
        listed++;
    }
    cr_expect_gt(listed, 0, "no functions found in docs/tgx.md");
    free(doc);
}

/* The README's op table names every op's constructor. */
Test(table, readme_lists_every_op)
{
    char *ops = section("README.md", "### Ops", "\n### ");
    for (int op = 0; op < TG_OP_COUNT; op++) {
        char want[64];
        constructor((tg_op)op, want, sizeof want);
        cr_expect(strstr(ops, want) != NULL, "README's op table lacks %s", want);
    }
    free(ops);
}

/* tg_apply records what the constructor records, and says what is wrong with a call. */
Test(table, apply_records_like_the_constructor)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_mat(TG_F64, 2, 3, TS_VALS(0.5, -1, 2, 0.25, 1.5, -3), true);
    tg_tensor *y = ts_apply(tape, TG_OP_SUM, x, NULL, &(tg_attrs){.axis = -1, .keepdim = true});
    tg_tensor *z = tg_sum(tape, x, -1, true);
    cr_assert(y && z, "%s", tg_tape_error(tape));
    cr_expect_eq(tg_tensor_op(y), TG_OP_SUM);
    cr_expect_eq(tg_tensor_rank(y), 2);
    for (size_t i = 0; i < 2; i++)
        cr_expect_eq(tg_tensor_get(y, i), tg_tensor_get(z, i));
    tg_attrs a;
    cr_assert_eq(tg_tensor_attrs(y, &a), TG_OK);
    cr_expect(a.axis == 1 && a.keepdim, "axis %d keepdim %d: normalized as recorded", a.axis,
              a.keepdim);
    tg_tensor *c = ts_apply(tape, TG_OP_CLAMP, x, NULL, &(tg_attrs){.lo = -1, .hi = 1});
    cr_assert_eq(tg_tensor_attrs(c, &a), TG_OK);
    cr_expect(a.lo == -1 && a.hi == 1 && a.c == 0);
    tg_tensor *r = ts_apply(tape, TG_OP_RESHAPE, x, NULL,
                            &(tg_attrs){.rank = 1, .shape = TS_SHAPE(6)});
    cr_assert_eq(tg_tensor_attrs(r, &a), TG_OK);
    cr_expect(a.rank == 1 && a.shape && a.shape[0] == 6);
    cr_expect_eq(tg_tensor_attrs(x, &a), TG_EINVAL, "a leaf has no op");
    cr_assert_eq(tg_tape_status(tape), TG_OK);

    /* Errors are kept on the tape, as a constructor's are. */
    tg_tensor *in[2] = {x, x};
    cr_expect_null(tg_apply(tape, TG_OP_ADD, in, 1, NULL));
    ts_assert_has(tg_tape_error(tape), "apply: add takes 2 inputs, got 1");
    tg_tape_reset(tape);
    cr_expect_null(tg_apply(tape, TG_OP_CONST, in, 0, NULL));
    ts_assert_has(tg_tape_error(tape), "tg_constant");
    tg_tape_reset(tape);
    cr_expect_null(tg_apply(tape, TG_OP_COUNT, in, 1, NULL));
    ts_assert_has(tg_tape_error(tape), "no such op");
    tg_tape_reset(tape);
    cr_expect_null(tg_apply(tape, TG_OP_SCALE, in, 1, NULL));
    ts_assert_has(tg_tape_error(tape), "scale takes attributes");
    tg_tape_reset(tape);
    cr_expect_null(tg_apply(tape, TG_OP_NEG, NULL, 1, NULL));
    ts_assert_has(tg_tape_error(tape), "apply: neg: inputs is NULL (n is 1)");
    cr_expect_null(tg_apply(NULL, TG_OP_NEG, in, 1, NULL));
    ts_assert_has(tg_last_error(), "tape is NULL");
    tg_tensor_free(x);
    tg_tape_free(tape);
}
