/* call.c: function calls and their arguments (docs/tgx.md, "Functions"): what each argument
 * must be comes from funcs.c (tensors, lists of tensors, constant axes, numbers and integers,
 * shapes and axis lists), and the tensor literals that lists of numbers make, which the value
 * parser behind NAME=VALUE reads too. */
#include "parser.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The shape of a tensor literal as its lists are read. */
typedef struct list_state {
    int rank; /* -1 until the first number or innermost list fixes it */
    bool seen[TG_MAX_RANK];
    size_t shape[TG_MAX_RANK];
    size_t end; /* just after the outermost ']' */
} list_state;

/* s[0..n) equals the lowercase `word`, ignoring ASCII case. */
static bool word_is(const char *s, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != word[i])
            return false;
    }
    return word[n] == '\0';
}

static bool unknown_function(parser *p, const tg_token *t)
{
    const char *s = p->src + t->start;
    size_t n = t->end - t->start;
    const char *guess = tg_expr__suggest(s, n);
    if (guess)
        return tg_expr__perr(p, t->start, t->end, "unknown function '%.*s' (did you mean '%s'?)",
                             CLIP(n), s, guess);
    return tg_expr__perr(p, t->start, t->end, "unknown function '%.*s'", CLIP(n), s);
}

bool tg_expr__parse_signed(parser *p, double *v)
{
    char what[64];
    size_t start = p->tok.start;
    double sign = 1;
    if (p->tok.kind == TG_TOK_MINUS || p->tok.kind == TG_TOK_PLUS) {
        sign = p->tok.kind == TG_TOK_MINUS ? -1 : 1;
        if (!tg_expr__next(p))
            return false;
    }
    const char *s = p->src + p->tok.start;
    size_t n = p->tok.end - p->tok.start;
    if (p->tok.kind == TG_TOK_NUM)
        *v = sign * p->tok.num;
    else if (p->tok.kind == TG_TOK_NAME && word_is(s, n, "nan"))
        *v = NAN;
    else if (p->tok.kind == TG_TOK_NAME && (word_is(s, n, "inf") || word_is(s, n, "infinity")))
        *v = sign * INFINITY;
    else
        return tg_expr__perr(p, start, p->tok.end, "expected a number, found %s",
                             tg_expr__describe(p, &p->tok, what, sizeof what));
    return tg_expr__next(p);
}

/* One level of a nested list; the current token is its '['. */
static bool parse_list_level(parser *p, list_state *ls, int level)
{
    tg_token open = p->tok;
    char what[64];
    if (level >= TG_MAX_RANK)
        return tg_expr__perr(p, open.start, open.end, "a tensor literal has at most %d dimensions",
                             TG_MAX_RANK);
    if (!tg_expr__enter(p, open.start))
        return false;
    p->nest++;
    if (!tg_expr__next(p))
        return false;
    size_t count = 0;
    while (p->tok.kind != TG_TOK_RBRACK) {
        if (p->tok.kind == TG_TOK_LBRACK) {
            if (ls->rank >= 0 && level + 1 >= ls->rank)
                return tg_expr__perr(p, p->tok.start, p->tok.end,
                                     "ragged tensor literal: a list where a number belongs");
            if (!parse_list_level(p, ls, level + 1))
                return false;
        } else {
            if (ls->rank < 0)
                ls->rank = level + 1;
            else if (ls->rank != level + 1)
                return tg_expr__perr(p, p->tok.start, p->tok.end,
                                     "ragged tensor literal: a number where a list belongs");
            /* An element that is an expression may hold a list literal of its own, whose
             * values then land amid this list's; such an element never folds to a number,
             * so the error below is certain before the values are used. */
            double v;
            if (p->value_mode
                    ? !tg_expr__parse_signed(p, &v)
                    : !tg_expr__parse_const(p, &v, "a tensor literal element", NULL, NULL))
                return false;
            if (!tg_expr__push_value(p, v))
                return false;
        }
        count++;
        if (p->tok.kind == TG_TOK_COMMA) {
            if (!tg_expr__next(p))
                return false;
        } else if (p->tok.kind != TG_TOK_RBRACK) {
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ',' or ']' in a list, found %s",
                                 tg_expr__describe(p, &p->tok, what, sizeof what));
        }
    }
    if (count == 0) {
        if (ls->rank < 0)
            ls->rank = level + 1;
        else if (ls->rank != level + 1)
            return tg_expr__perr(p, open.start, p->tok.end,
                                 "ragged tensor literal: an empty list where a number belongs");
    }
    if (!ls->seen[level]) {
        ls->seen[level] = true;
        ls->shape[level] = count;
    } else if (ls->shape[level] != count) {
        return tg_expr__perr(
            p, open.start, p->tok.end,
            "ragged tensor literal: this list has %zu element%s, the first list at "
            "its depth has %zu",
            count, count == 1 ? "" : "s", ls->shape[level]);
    }
    ls->end = p->tok.end;
    p->nest--;
    if (!tg_expr__next(p))
        return false;
    tg_expr__leave(p);
    return true;
}

/* A whole list literal into a new literal entry; the current token is its '['. */
bool tg_expr__parse_list(parser *p, uint32_t *lit, size_t *start, size_t *end)
{
    tg_program *g = p->prog;
    list_state ls = {.rank = -1};
    size_t first = g->n_values;
    *start = p->tok.start;
    if (!parse_list_level(p, &ls, 0))
        return false;
    *end = ls.end;
    size_t numel = 1;
    for (int i = 0; i < ls.rank; i++)
        numel *= ls.shape[i]; /* cannot overflow: every element was written out */
    if (numel != g->n_values - first && !(numel == 0 && g->n_values == first))
        return tg_expr__perr(p, *start, *end, "ragged tensor literal");
    if (g->n_lits >= UINT32_MAX - 1 || tg__grow((void **)&g->lits, &g->cap_lits, g->n_lits + 1,
                                                sizeof *g->lits, "tgx literals") != TG_OK)
        return tg_expr__oom(p);
    tg_xlit *l = &g->lits[g->n_lits];
    memset(l, 0, sizeof *l);
    l->rank = ls.rank;
    for (int i = 0; i < ls.rank; i++)
        l->shape[i] = ls.shape[i];
    l->offset = first;
    l->numel = numel;
    *lit = (uint32_t)g->n_lits++;
    return true;
}

/* The list literal `what` of function fn takes (its shape, its axes; `like` an example): a
 * flat list of at most TG_MAX_RANK numbers, into *lit, spanning [*start, *end) of the source.
 * What the numbers must be is the caller's to check. */
static bool parse_small_list(parser *p, const char *fn, const char *what, const char *like,
                             uint32_t *lit, size_t *start, size_t *end)
{
    if (p->tok.kind != TG_TOK_LBRACK)
        return tg_expr__perr(p, p->tok.start, p->tok.end,
                             "the %s of '%s' must be a list of integers, like %s", what, fn, like);
    if (!tg_expr__parse_list(p, lit, start, end))
        return false;
    const tg_xlit *l = &p->prog->lits[*lit];
    if (l->rank != 1 || l->numel > TG_MAX_RANK)
        return tg_expr__perr(p, *start, *end,
                             "the %s of '%s' must be a flat list of at most %d integers", what, fn,
                             TG_MAX_RANK);
    return true;
}

/* A shape argument of function fn: a flat list of integers >= -1 with at most one -1 (the
 * size that makes the element count right, found when the program runs). */
static bool parse_shape(parser *p, const char *fn, uint32_t *lit)
{
    size_t start, end;
    if (!parse_small_list(p, fn, "shape", "[2, 3]", lit, &start, &end))
        return false;
    const tg_program *g = p->prog;
    const tg_xlit *l = &g->lits[*lit];
    int unknown = 0;
    double known = 1;
    for (size_t i = 0; i < l->numel; i++) {
        double d = g->values[l->offset + i];
        if (d > MAX_EXACT_INT && d == floor(d))
            return tg_expr__perr(p, start, end,
                                 "the shape of '%s' holds %g, more than 2^53 (no "
                                 "tensor is that large)",
                                 fn, d);
        if (!(d >= -1 && d == floor(d)))
            return tg_expr__perr(p, start, end,
                                 "the shape of '%s' must hold integers >= 0 (and at "
                                 "most one -1), not %g",
                                 fn, d);
        if (d == -1 && ++unknown > 1)
            return tg_expr__perr(p, start, end, "the shape of '%s' may hold only one -1", fn);
        if (d >= 0)
            known *= d;
    }
    if (known > MAX_EXACT_INT)
        return tg_expr__perr(p, start, end, "the shape of '%s' has too many elements", fn);
    return true;
}

/* An axes argument of function fn (permute): a flat list of at most TG_MAX_RANK integers.
 * Whether it is a permutation of the input's axes is the op's to say. */
static bool parse_axes(parser *p, const char *fn, uint32_t *lit)
{
    size_t start, end;
    if (!parse_small_list(p, fn, "axes", "[1, 0]", lit, &start, &end))
        return false;
    const tg_program *g = p->prog;
    const tg_xlit *l = &g->lits[*lit];
    for (size_t i = 0; i < l->numel; i++) {
        double d = g->values[l->offset + i];
        if (d != floor(d) || isnan(d))
            return tg_expr__perr(p, start, end, "the axes of '%s' must be integers, not %g", fn, d);
        if (fabs(d) > 1e9) /* an integer, but no axis of any tensor */
            return tg_expr__perr(p, start, end,
                                 "the axes of '%s' hold %g, out of range (a tensor has at most "
                                 "%d axes)",
                                 fn, d, TG_MAX_RANK);
    }
    return true;
}

/* A list of tensors, '[' expr { ',' expr } [','] ']', for a variadic op (concat, stack): its
 * nodes are appended to prog->args as one run, *at its start and *n its length. Lists in it
 * (tensor literals, or the lists of nested calls) are pushed before it, so runs never mix. */
static bool parse_tensor_list(parser *p, const char *fn, uint32_t *at, uint32_t *n)
{
    char buf[64];
    tg_token open = p->tok;
    if (open.kind != TG_TOK_LBRACK)
        return tg_expr__perr(p, open.start, open.end,
                             "the first argument of '%s' must be a list of tensors, like [a, b]",
                             fn);
    if (!tg_expr__enter(p, open.start))
        return false;
    p->nest++;
    uint32_t *nodes = NULL;
    size_t count = 0, cap = 0;
    bool ok = tg_expr__next(p);
    while (ok && p->tok.kind != TG_TOK_RBRACK) {
        xref a;
        ok = tg_expr__parse_expr(p, &a);
        if (ok && tg__grow((void **)&nodes, &cap, count + 1, sizeof *nodes, "tgx lists") != TG_OK)
            ok = tg_expr__oom(p);
        if (!ok)
            break;
        nodes[count++] = a.node;
        if (p->tok.kind == TG_TOK_COMMA)
            ok = tg_expr__next(p);
        else if (p->tok.kind != TG_TOK_RBRACK)
            ok = tg_expr__perr(p, p->tok.start, p->tok.end,
                               "expected ',' or ']' in the list of '%s', found %s", fn,
                               tg_expr__describe(p, &p->tok, buf, sizeof buf));
    }
    if (ok && count == 0)
        ok = tg_expr__perr(p, open.start, p->tok.end, "'%s' needs at least one tensor in its list",
                           fn);
    if (ok)
        ok = tg_expr__push_args(p, nodes, count, at);
    tg__free(nodes, cap * sizeof *nodes);
    if (!ok)
        return false;
    *n = (uint32_t)count;
    p->nest--;
    tg_expr__leave(p);
    return tg_expr__next(p);
}

static const char *arg_count(const tg_xfunc *f, char *buf, size_t size)
{
    if (f->min_args == f->max_args)
        snprintf(buf, size, "%d argument%s", f->min_args, f->min_args == 1 ? "" : "s");
    else
        snprintf(buf, size, "%d or %d arguments", f->min_args, f->max_args);
    return buf;
}

/* What the arguments of one call gave, gathered as they are read. */
typedef struct call_args {
    uint32_t operands[TG_XFUNC_MAX_ARGS];
    int n_operands;
    uint32_t list_at, list_n; /* a list of tensors */
    bool list;
    uint32_t lit; /* a shape or axes */
    int32_t axis;
    double numbers[2];
    int n_numbers;
    int64_t ints[3];
    int n_ints;
    xref exponent; /* pow's second argument, which may be a tensor */
} call_args;

/* Argument number nargs of f into ca. */
static bool parse_arg(parser *p, const tg_xfunc *f, int nargs, call_args *ca)
{
    xref a;
    double v;
    char what[32];
    switch (f->args[nargs]) {
    case TG_XARG_TENSOR:
        if (!tg_expr__parse_expr(p, &a))
            return false;
        ca->operands[ca->n_operands++] = a.node;
        return true;
    case TG_XARG_TENSORS:
        ca->list = true;
        return parse_tensor_list(p, f->name, &ca->list_at, &ca->list_n);
    case TG_XARG_AXIS:
        if (!tg_expr__parse_const(p, &v, "the axis", f->name, &a))
            return false;
        if (v != floor(v) || isnan(v))
            return tg_expr__perr(p, a.start, a.end, "the axis of '%s' must be an integer, not %g",
                                 f->name, v);
        /* An integer all the same: "must be an integer, not 1e+10" would be wrong. */
        if (fabs(v) > 1e9)
            return tg_expr__perr(p, a.start, a.end,
                                 "the axis of '%s' is %g, out of range (a tensor has at most %d "
                                 "axes)",
                                 f->name, v, TG_MAX_RANK);
        ca->axis = (int32_t)v;
        return true;
    case TG_XARG_NUMBER:
        if (f->kind == TG_X_OP && f->op == TG_OP_POW) { /* pow(x, y): y may be a tensor */
            /* Read as the exponent of '^' is, folding: pow(x, 1/3) records tg_pow as
             * x^(1/3) does, not pow_tensor of a recorded 1/3, in any statement. */
            p->fold++;
            bool ok = tg_expr__parse_expr(p, &ca->exponent);
            p->fold--;
            if (!ok)
                return false;
            ca->numbers[ca->n_numbers++] = 0;
            return true;
        }
        snprintf(what, sizeof what, "argument %d", nargs + 1);
        if (!tg_expr__parse_const(p, &v, what, f->name, &a))
            return false;
        ca->numbers[ca->n_numbers++] = v;
        return true;
    case TG_XARG_COUNT:
        if (!tg_expr__parse_const(p, &v, "the class count", f->name, &a))
            return false;
        if (v > MAX_EXACT_INT && v == floor(v))
            return tg_expr__perr(p, a.start, a.end,
                                 "the class count of '%s' is %g, more than 2^53 (no tensor is "
                                 "that large)",
                                 f->name, v);
        if (!(v >= 1 && v == floor(v))) /* tg_onehot: a label needs a class to be */
            return tg_expr__perr(p, a.start, a.end,
                                 "the class count of '%s' must be an integer >= 1, not %g", f->name,
                                 v);
        ca->numbers[ca->n_numbers++] = v;
        return true;
    case TG_XARG_INT: {
        static const char *const SLICE[] = {"the start", "the stop", "the step"};
        bool index = tg_op_info_of(f->op)->attrs == TG_ATTR_INDEX;
        const char *name = index ? "the index" : SLICE[ca->n_ints];
        bool far; /* a slice's bound or step clamps; an index beyond 2^53 is an error */
        if (!tg_expr__parse_int(p, &ca->ints[ca->n_ints], name, f->name, &a, index ? NULL : &far))
            return false;
        if (ca->n_ints == 2 && ca->ints[2] <= 0)
            return tg_expr__perr(p, a.start, a.end, "the step of '%s' must be positive, not %lld",
                                 f->name, (long long)ca->ints[2]);
        ca->n_ints++;
        return true;
    }
    case TG_XARG_SHAPE: return parse_shape(p, f->name, &ca->lit);
    case TG_XARG_AXES: return parse_axes(p, f->name, &ca->lit);
    }
    return false;
}

/* name(args): the current token is the name, the next is '('. Tensor arguments become the
 * node's operands (in args when there are more than two), the others its attributes. */
bool tg_expr__parse_call(parser *p, xref *out)
{
    tg_token t = p->tok;
    tg_xfunc fn, *f = &fn;
    char buf[64];
    if (!tg_expr__find_func(p->src + t.start, t.end - t.start, f))
        return unknown_function(p, &t);
    if (!tg_expr__next(p) || !tg_expr__enter(p, p->tok.start))
        return false;
    p->nest++;
    if (!tg_expr__next(p))
        return false;
    call_args ca = {.lit = TG_EXPR_NONE, .axis = f->default_axis, .ints = {0, 0, 1}};
    for (int i = 0; i < TG_XFUNC_MAX_ARGS; i++)
        ca.operands[i] = TG_EXPR_NONE;
    int nargs = 0;
    while (p->tok.kind != TG_TOK_RPAREN) {
        /* After a trailing comma, the end of the input or of the statement is a missing ')',
         * not one argument too many. */
        if (nargs >= f->max_args && (p->tok.kind == TG_TOK_EOF || p->tok.kind == TG_TOK_SEMI))
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ')' after argument %d of '%s', found %s", nargs, f->name,
                                 tg_expr__describe(p, &p->tok, buf, sizeof buf));
        if (nargs >= f->max_args)
            return tg_expr__perr(p, p->tok.start, p->tok.end, "'%s' takes %s: %s", f->name,
                                 arg_count(f, buf, sizeof buf), f->usage);
        if (!parse_arg(p, f, nargs, &ca))
            return false;
        nargs++;
        if (p->tok.kind == TG_TOK_COMMA) {
            if (!tg_expr__next(p))
                return false;
        } else if (p->tok.kind != TG_TOK_RPAREN) {
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ',' or ')' after argument %d of '%s', found %s", nargs,
                                 f->name, tg_expr__describe(p, &p->tok, buf, sizeof buf));
        }
    }
    size_t end = p->tok.end;
    if (nargs < f->min_args)
        return tg_expr__perr(p, t.start, end, "'%s' takes %s: %s (got %d)", f->name,
                             arg_count(f, buf, sizeof buf), f->usage, nargs);
    p->nest--;
    if (!tg_expr__next(p))
        return false;
    tg_expr__leave(p);
    if (f->kind == TG_X_OP && f->op == TG_OP_POW) {
        xref base = {ca.operands[0], t.start, end};
        if (!tg_expr__power(p, base, ca.exponent, out))
            return false;
        tg_xnode *x = &p->prog->nodes[out->node];
        x->start = (uint32_t)t.start;
        x->end = (uint32_t)end;
        *out = (xref){out->node, t.start, end};
        return true;
    }
    uint32_t many = TG_EXPR_NONE;
    if (ca.n_operands > 2 && !tg_expr__push_args(p, ca.operands, (size_t)ca.n_operands, &many))
        return false;
    uint32_t k = f->kind == TG_X_OP ? tg_expr__emit_op(p, f->op, t.start, end)
                                    : tg_expr__emit(p, f->kind, t.start, end);
    if (k == TG_EXPR_NONE)
        return false;
    tg_xnode *x = &p->prog->nodes[k];
    x->a = ca.operands[0];
    x->b = ca.operands[1];
    if (ca.list) {
        x->arg = ca.list_at;
        x->n_args = ca.list_n;
    } else if (ca.n_operands > 2) {
        x->arg = many;
        x->n_args = (uint32_t)ca.n_operands;
    }
    x->axis = ca.axis;
    x->c = ca.numbers[0];
    x->c2 = ca.numbers[1];
    x->lit = ca.lit;
    x->from = ca.ints[0];
    x->to = ca.ints[1];
    x->step = ca.ints[2];
    *out = (xref){k, t.start, end};
    return true;
}
