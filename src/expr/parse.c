/* parse.c: the tgx parser (docs/tgx.md), and the value parser behind NAME=VALUE, on the
 * lexer of lex.c and the functions of funcs.c. Recursive descent with one token of lookahead
 * that emits the program's flat node array directly. Chains of binary operators and of unary minus
 * are loops, and everything that nests (parentheses, calls, lists, '^') counts against
 * TG_EXPR_MAX_DEPTH, so hostile input gets an error, never a stack overflow. */
#include "expr_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CLIP TG_EXPR_CLIP

/* Largest integer a double holds exactly: the bound for shape entries and class counts. */
#define MAX_EXACT_INT 9007199254740992.0

typedef struct sym {
    uint32_t name; /* offset of its text in prog->names */
    uint32_t bind; /* the node it names now, or TG_EXPR_NONE */
} sym;

/* A parsed operand: its node, and where it is written (which may include parentheses, and
 * differs from the node's own span when the operand is a name bound earlier). */
typedef struct xref {
    uint32_t node;
    size_t start, end;
} xref;

/* The shape of a tensor literal as its lists are read. */
typedef struct list_state {
    int rank; /* -1 until the first number or innermost list fixes it */
    bool seen[TG_MAX_RANK];
    size_t shape[TG_MAX_RANK];
    size_t end; /* just after the outermost ']' */
} list_state;

typedef struct parser {
    tg_program *prog;
    const char *src;
    size_t len;
    size_t pos;      /* where the lexer goes on */
    tg_token tok;    /* the current token */
    int nest;        /* open '(' and '[': newlines inside them are spaces */
    int depth;       /* nesting, against TG_EXPR_MAX_DEPTH */
    int fold;        /* > 0 while reading a constant: arithmetic on numbers folds */
    bool value_mode; /* tg_expr_parse_value: numbers and lists only */
    tg_expr_error *err;
    tg_status status;
    char lexmsg[160]; /* the lexer's complaint, reported when the token is consumed */
    sym *syms;
    size_t n_syms, cap_syms;
    uint32_t *table; /* open addressing: sym index + 1, 0 for empty */
    size_t cap_table;
} parser;

/* ---- errors --------------------------------------------------------------------------------- */

static bool fail(parser *p, size_t start, size_t end, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(parser *p, size_t start, size_t end, const char *fmt, ...)
{
    char msg[sizeof p->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->status = tg_expr__fail(p->err, TG_EFORMAT, p->src, p->len, start, end, "%s", msg);
    return false;
}

static bool oom(parser *p)
{
    p->status = tg_expr__fail(p->err, TG_ENOMEM, NULL, 0, 0, 0, "out of memory while parsing");
    return false;
}

/* Moves to the next token; inside brackets (and in values) newlines are skipped. */
static bool next(parser *p)
{
    for (;;) {
        if (!tg_expr__lex(p->src, p->len, p->pos, &p->tok, p->lexmsg, sizeof p->lexmsg))
            return fail(p, p->tok.start, p->tok.end, "%s", p->lexmsg);
        p->pos = p->tok.end;
        if (p->tok.kind == TG_TOK_NEWLINE && (p->nest > 0 || p->value_mode))
            continue;
        return true;
    }
}

/* The kind of the token after the current one (TG_TOK_EOF when it would be a lexical error,
 * which is reported when it is reached). */
static tg_tok peek(parser *p)
{
    tg_token t;
    char msg[sizeof p->lexmsg]; /* the error is reported when the token is reached */
    return tg_expr__lex(p->src, p->len, p->pos, &t, msg, sizeof msg) ? t.kind : TG_TOK_EOF;
}

/* How a token reads in "found ..." messages. */
static const char *describe(const parser *p, const tg_token *t, char *buf, size_t size)
{
    switch (t->kind) {
    case TG_TOK_EOF: return "end of input";
    case TG_TOK_NEWLINE: return "end of line";
    case TG_TOK_NUM:
        snprintf(buf, size, "number %.*s", CLIP(t->end - t->start), p->src + t->start);
        return buf;
    default: snprintf(buf, size, "'%.*s'", CLIP(t->end - t->start), p->src + t->start); return buf;
    }
}

/* ---- program storage -------------------------------------------------------------------- */

static uint32_t emit(parser *p, tg_xkind kind, size_t start, size_t end)
{
    tg_program *g = p->prog;
    if (g->n_nodes >= UINT32_MAX - 1) {
        fail(p, start, end, "the program has too many operations");
        return TG_EXPR_NONE;
    }
    if (tg__grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes,
                 "tgx nodes") != TG_OK) {
        oom(p);
        return TG_EXPR_NONE;
    }
    tg_xnode *x = &g->nodes[g->n_nodes];
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)kind;
    x->a = x->b = x->lit = TG_EXPR_NONE;
    x->start = (uint32_t)start;
    x->end = (uint32_t)end;
    return (uint32_t)g->n_nodes++;
}

static bool emit_num(parser *p, double v, size_t start, size_t end, xref *out)
{
    uint32_t k = emit(p, TG_X_NUM, start, end);
    if (k == TG_EXPR_NONE)
        return false;
    p->prog->nodes[k].c = v;
    *out = (xref){k, start, end};
    return true;
}

/* Forgets a number node that folding consumed, when nothing else can refer to it: it is the
 * last node and no name is bound to it. */
static void drop(parser *p, uint32_t k)
{
    tg_program *g = p->prog;
    if (k + 1 == g->n_nodes && g->nodes[k].kind == TG_X_NUM && g->nodes[k].name == 0)
        g->n_nodes--;
}

static bool push_value(parser *p, double v)
{
    tg_program *g = p->prog;
    if (tg__grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values,
                 "tgx literal") != TG_OK)
        return oom(p);
    g->values[g->n_values++] = v;
    return true;
}

/* ---- symbols: a hash table from name to its current binding --------------------------- */

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

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

static bool rehash(parser *p)
{
    size_t cap = p->cap_table ? p->cap_table * 2 : 64;
    if (cap > SIZE_MAX / sizeof(uint32_t))
        return oom(p);
    uint32_t *t = tg__calloc(cap, sizeof *t);
    if (!t)
        return oom(p);
    for (size_t i = 0; i < p->n_syms; i++) {
        const char *nm = p->prog->names + p->syms[i].name;
        size_t h = hash_name(nm, strlen(nm)) & (cap - 1);
        while (t[h])
            h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)(i + 1);
    }
    tg__free(p->table, p->cap_table * sizeof *p->table);
    p->table = t;
    p->cap_table = cap;
    return true;
}

/* The symbol for the name s[0..n), created (unbound) on first sight. */
static bool intern(parser *p, const char *s, size_t n, uint32_t *out)
{
    if ((p->n_syms + 1) * 2 > p->cap_table && !rehash(p))
        return false;
    tg_program *g = p->prog;
    size_t mask = p->cap_table - 1, h = hash_name(s, n) & mask;
    for (; p->table[h]; h = (h + 1) & mask) {
        uint32_t i = p->table[h] - 1;
        if (tg_expr__same_name(g->names + p->syms[i].name, s, n)) {
            *out = i;
            return true;
        }
    }
    if (tg__grow((void **)&p->syms, &p->cap_syms, p->n_syms + 1, sizeof *p->syms, "tgx names") !=
            TG_OK ||
        tg__grow((void **)&g->names, &g->cap_names, g->n_names + n + 1, 1, "tgx names") != TG_OK)
        return oom(p);
    memcpy(g->names + g->n_names, s, n);
    g->names[g->n_names + n] = '\0';
    p->syms[p->n_syms] = (sym){(uint32_t)g->n_names, TG_EXPR_NONE};
    g->n_names += n + 1;
    p->table[h] = (uint32_t)(p->n_syms + 1);
    *out = (uint32_t)p->n_syms++;
    return true;
}

/* ---- functions ---------------------------------------------------------------------------- */

static bool unknown_function(parser *p, const tg_token *t)
{
    const char *s = p->src + t->start;
    size_t n = t->end - t->start;
    const char *guess = tg_expr__suggest(s, n);
    if (guess)
        return fail(p, t->start, t->end, "unknown function '%.*s' (did you mean '%s'?)", CLIP(n), s,
                    guess);
    return fail(p, t->start, t->end, "unknown function '%.*s'", CLIP(n), s);
}

/* ---- expressions ------------------------------------------------------------------------- */

static bool parse_expr(parser *p, xref *out);
static bool parse_unary(parser *p, xref *out);

static bool enter(parser *p, size_t at)
{
    if (++p->depth > TG_EXPR_MAX_DEPTH)
        return fail(p, at, at + 1, "expression nested too deeply (more than %d levels)",
                    TG_EXPR_MAX_DEPTH);
    return true;
}

static void leave(parser *p)
{
    p->depth--;
}

/* A constant: an expression that folds to one number (literals, + - * / ^, parentheses,
 * names bound to numbers). `what` names it in the error. */
static bool parse_const(parser *p, double *v, const char *what, const char *fn, xref *span)
{
    xref r;
    p->fold++;
    bool ok = parse_expr(p, &r);
    p->fold--;
    if (!ok)
        return false;
    const tg_xnode *x = &p->prog->nodes[r.node];
    if (x->kind != TG_X_NUM)
        return fail(p, r.start, r.end, "%s%s%s%s must be a constant number", what,
                    fn ? " of '" : "", fn ? fn : "", fn ? "'" : "");
    *v = x->c;
    if (span)
        *span = r;
    drop(p, r.node);
    return true;
}

/* A node of op (the kind TG_X_OP) spanning [start, end), or TG_EXPR_NONE. */
static uint32_t emit_op(parser *p, tg_op op, size_t start, size_t end)
{
    uint32_t k = emit(p, TG_X_OP, start, end);
    if (k != TG_EXPR_NONE)
        p->prog->nodes[k].op = (uint8_t)op;
    return k;
}

/* a op b for the operators + - * / @; while folding, numbers combine into one. */
static bool binary(parser *p, tg_op op, xref a, xref b, xref *out)
{
    tg_program *g = p->prog;
    const tg_xnode *na = &g->nodes[a.node], *nb = &g->nodes[b.node];
    if (p->fold && op != TG_OP_MATMUL && na->kind == TG_X_NUM && nb->kind == TG_X_NUM) {
        double x = na->c, y = nb->c;
        double v = op == TG_OP_ADD   ? x + y
                   : op == TG_OP_SUB ? x - y
                   : op == TG_OP_MUL ? x * y
                                     : x / y;
        drop(p, b.node);
        drop(p, a.node);
        return emit_num(p, v, a.start, b.end, out);
    }
    uint32_t k = emit_op(p, op, a.start, b.end);
    if (k == TG_EXPR_NONE)
        return false;
    g->nodes[k].a = a.node;
    g->nodes[k].b = b.node;
    *out = (xref){k, a.start, b.end};
    return true;
}

/* A name that is not called: a binding made earlier, or else a new input. */
static bool parse_name(parser *p, xref *out)
{
    tg_token t = p->tok;
    const char *s = p->src + t.start;
    size_t n = t.end - t.start;
    tg_xfunc f;
    if (tg_expr__find_func(s, n, &f))
        return fail(p, t.start, t.end, "'%.*s' is a function: call it as %.*s(...)", CLIP(n), s,
                    CLIP(n), s);
    uint32_t id;
    if (!intern(p, s, n, &id))
        return false;
    tg_program *g = p->prog;
    if (p->syms[id].bind == TG_EXPR_NONE) {
        uint32_t k = emit(p, TG_X_INPUT, t.start, t.end);
        if (k == TG_EXPR_NONE)
            return false;
        size_t i = g->n_inputs;
        if (tg__grow((void **)&g->inputs, &g->cap_inputs, i + 1, sizeof *g->inputs, "tgx inputs") !=
                TG_OK ||
            tg__grow((void **)&g->input_node, &g->cap_input_node, i + 1, sizeof *g->input_node,
                     "tgx inputs") != TG_OK)
            return oom(p);
        g->inputs[i] = p->syms[id].name;
        g->input_node[i] = k;
        g->nodes[k].lit = (uint32_t)i;
        g->n_inputs++;
        p->syms[id].bind = k;
    }
    *out = (xref){p->syms[id].bind, t.start, t.end};
    return next(p);
}

/* In values: a number with an optional sign, or nan, inf, infinity (any case). */
static bool parse_signed(parser *p, double *v)
{
    char what[64];
    size_t start = p->tok.start;
    double sign = 1;
    if (p->tok.kind == TG_TOK_MINUS || p->tok.kind == TG_TOK_PLUS) {
        sign = p->tok.kind == TG_TOK_MINUS ? -1 : 1;
        if (!next(p))
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
        return fail(p, start, p->tok.end, "expected a number, found %s",
                    describe(p, &p->tok, what, sizeof what));
    return next(p);
}

/* One level of a nested list; the current token is its '['. */
static bool parse_list_level(parser *p, list_state *ls, int level)
{
    tg_token open = p->tok;
    char what[64];
    if (level >= TG_MAX_RANK)
        return fail(p, open.start, open.end, "a tensor literal has at most %d dimensions",
                    TG_MAX_RANK);
    if (!enter(p, open.start))
        return false;
    p->nest++;
    if (!next(p))
        return false;
    size_t count = 0;
    while (p->tok.kind != TG_TOK_RBRACK) {
        if (p->tok.kind == TG_TOK_LBRACK) {
            if (ls->rank >= 0 && level + 1 >= ls->rank)
                return fail(p, p->tok.start, p->tok.end,
                            "ragged tensor literal: a list where a number belongs");
            if (!parse_list_level(p, ls, level + 1))
                return false;
        } else {
            if (ls->rank < 0)
                ls->rank = level + 1;
            else if (ls->rank != level + 1)
                return fail(p, p->tok.start, p->tok.end,
                            "ragged tensor literal: a number where a list belongs");
            /* An element that is an expression may hold a list literal of its own, whose
             * values then land amid this list's; such an element never folds to a number,
             * so the error below is certain before the values are used. */
            double v;
            if (p->value_mode ? !parse_signed(p, &v)
                              : !parse_const(p, &v, "a tensor literal element", NULL, NULL))
                return false;
            if (!push_value(p, v))
                return false;
        }
        count++;
        if (p->tok.kind == TG_TOK_COMMA) {
            if (!next(p))
                return false;
        } else if (p->tok.kind != TG_TOK_RBRACK) {
            return fail(p, p->tok.start, p->tok.end, "expected ',' or ']' in a list, found %s",
                        describe(p, &p->tok, what, sizeof what));
        }
    }
    if (count == 0) {
        if (ls->rank < 0)
            ls->rank = level + 1;
        else if (ls->rank != level + 1)
            return fail(p, open.start, p->tok.end,
                        "ragged tensor literal: an empty list where a number belongs");
    }
    if (!ls->seen[level]) {
        ls->seen[level] = true;
        ls->shape[level] = count;
    } else if (ls->shape[level] != count) {
        return fail(p, open.start, p->tok.end,
                    "ragged tensor literal: this list has %zu element%s, the first list at "
                    "its depth has %zu",
                    count, count == 1 ? "" : "s", ls->shape[level]);
    }
    ls->end = p->tok.end;
    p->nest--;
    if (!next(p))
        return false;
    leave(p);
    return true;
}

/* A whole list literal into a new literal entry; the current token is its '['. */
static bool parse_list(parser *p, uint32_t *lit, size_t *start, size_t *end)
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
        return fail(p, *start, *end, "ragged tensor literal");
    if (g->n_lits >= UINT32_MAX - 1 || tg__grow((void **)&g->lits, &g->cap_lits, g->n_lits + 1,
                                                sizeof *g->lits, "tgx literals") != TG_OK)
        return oom(p);
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

/* A shape argument of function fn: a flat list of integers >= -1 with at most one -1 (the
 * size that makes the element count right, found when the program runs). */
static bool parse_shape(parser *p, const char *fn, uint32_t *lit)
{
    if (p->tok.kind != TG_TOK_LBRACK)
        return fail(p, p->tok.start, p->tok.end,
                    "the shape of '%s' must be a list of integers, like [2, 3]", fn);
    size_t start, end;
    if (!parse_list(p, lit, &start, &end))
        return false;
    const tg_program *g = p->prog;
    const tg_xlit *l = &g->lits[*lit];
    if (l->rank != 1 || l->numel > TG_MAX_RANK)
        return fail(p, start, end,
                    "the shape of '%s' must be a flat list of at most %d "
                    "integers",
                    fn, TG_MAX_RANK);
    int unknown = 0;
    double known = 1;
    for (size_t i = 0; i < l->numel; i++) {
        double d = g->values[l->offset + i];
        if (d > MAX_EXACT_INT && d == floor(d))
            return fail(p, start, end,
                        "the shape of '%s' holds %g, more than 2^53 (no "
                        "tensor is that large)",
                        fn, d);
        if (!(d >= -1 && d == floor(d)))
            return fail(p, start, end,
                        "the shape of '%s' must hold integers >= 0 (and at "
                        "most one -1), not %g",
                        fn, d);
        if (d == -1 && ++unknown > 1)
            return fail(p, start, end, "the shape of '%s' may hold only one -1", fn);
        if (d >= 0)
            known *= d;
    }
    if (known > MAX_EXACT_INT)
        return fail(p, start, end, "the shape of '%s' has too many elements", fn);
    return true;
}

static const char *arg_count(const tg_xfunc *f, char *buf, size_t size)
{
    if (f->min_args == f->max_args)
        snprintf(buf, size, "%d argument%s", f->min_args, f->min_args == 1 ? "" : "s");
    else
        snprintf(buf, size, "%d or %d arguments", f->min_args, f->max_args);
    return buf;
}

/* name(args): the current token is the name, the next is '('. Tensor arguments become the
 * node's operands, the others its attributes. */
static bool parse_call(parser *p, xref *out)
{
    tg_token t = p->tok;
    tg_xfunc fn, *f = &fn;
    char buf[64];
    if (!tg_expr__find_func(p->src + t.start, t.end - t.start, f))
        return unknown_function(p, &t);
    if (!next(p) || !enter(p, p->tok.start))
        return false;
    p->nest++;
    if (!next(p))
        return false;
    uint32_t operands[2] = {TG_EXPR_NONE, TG_EXPR_NONE}, lit = TG_EXPR_NONE;
    int nargs = 0, n_operands = 0, n_numbers = 0;
    int32_t axis = f->default_axis;
    double numbers[2] = {0, 0};
    while (p->tok.kind != TG_TOK_RPAREN) {
        if (nargs >= f->max_args)
            return fail(p, p->tok.start, p->tok.end, "'%s' takes %s: %s", f->name,
                        arg_count(f, buf, sizeof buf), f->usage);
        xref a;
        double v;
        char what[32];
        switch (f->args[nargs]) {
        case TG_XARG_TENSOR:
            if (!parse_expr(p, &a))
                return false;
            operands[n_operands++] = a.node;
            break;
        case TG_XARG_AXIS:
            if (!parse_const(p, &v, "the axis", f->name, &a))
                return false;
            if (!(fabs(v) <= 1e9 && v == floor(v)))
                return fail(p, a.start, a.end, "the axis of '%s' must be an integer, not %g",
                            f->name, v);
            axis = (int32_t)v;
            break;
        case TG_XARG_NUMBER:
            snprintf(what, sizeof what, "argument %d", nargs + 1);
            if (!parse_const(p, &v, what, f->name, &a))
                return false;
            numbers[n_numbers++] = v;
            break;
        case TG_XARG_COUNT:
            if (!parse_const(p, &v, "the class count", f->name, &a))
                return false;
            if (v > MAX_EXACT_INT && v == floor(v))
                return fail(p, a.start, a.end,
                            "the class count of '%s' is %g, more than 2^53 (no tensor is that "
                            "large)",
                            f->name, v);
            if (!(v >= 0 && v == floor(v)))
                return fail(p, a.start, a.end,
                            "the class count of '%s' must be an integer >= 0, not %g", f->name, v);
            numbers[n_numbers++] = v;
            break;
        case TG_XARG_SHAPE:
            if (!parse_shape(p, f->name, &lit))
                return false;
            break;
        }
        nargs++;
        if (p->tok.kind == TG_TOK_COMMA) {
            if (!next(p))
                return false;
        } else if (p->tok.kind != TG_TOK_RPAREN) {
            return fail(p, p->tok.start, p->tok.end,
                        "expected ',' or ')' after argument %d of '%s', found %s", nargs, f->name,
                        describe(p, &p->tok, buf, sizeof buf));
        }
    }
    size_t end = p->tok.end;
    if (nargs < f->min_args)
        return fail(p, t.start, end, "'%s' takes %s: %s (got %d)", f->name,
                    arg_count(f, buf, sizeof buf), f->usage, nargs);
    p->nest--;
    if (!next(p))
        return false;
    leave(p);
    uint32_t k =
        f->kind == TG_X_OP ? emit_op(p, f->op, t.start, end) : emit(p, f->kind, t.start, end);
    if (k == TG_EXPR_NONE)
        return false;
    tg_xnode *x = &p->prog->nodes[k];
    x->a = operands[0];
    x->b = operands[1];
    x->axis = axis;
    x->c = numbers[0];
    x->c2 = numbers[1];
    x->lit = lit;
    *out = (xref){k, t.start, end};
    return true;
}

static bool parse_primary(parser *p, xref *out)
{
    tg_token t = p->tok;
    char buf[64];
    switch (t.kind) {
    case TG_TOK_NUM: return emit_num(p, t.num, t.start, t.end, out) && next(p);
    case TG_TOK_NAME: return peek(p) == TG_TOK_LPAREN ? parse_call(p, out) : parse_name(p, out);
    case TG_TOK_LPAREN: {
        if (!enter(p, t.start))
            return false;
        p->nest++;
        if (!next(p) || !parse_expr(p, out))
            return false;
        if (p->tok.kind != TG_TOK_RPAREN) {
            int line, col;
            tg_expr__locate(p->src, p->len, t.start, &line, &col);
            return fail(p, p->tok.start, p->tok.end,
                        "expected ')' to close the '(' at %d:%d, "
                        "found %s",
                        line, col, describe(p, &p->tok, buf, sizeof buf));
        }
        out->start = t.start;
        out->end = p->tok.end;
        p->nest--;
        if (!next(p))
            return false;
        leave(p);
        return true;
    }
    case TG_TOK_LBRACK: {
        uint32_t lit;
        size_t start, end;
        if (!parse_list(p, &lit, &start, &end))
            return false;
        uint32_t k = emit(p, TG_X_LIST, start, end);
        if (k == TG_EXPR_NONE)
            return false;
        p->prog->nodes[k].lit = lit;
        *out = (xref){k, start, end};
        return true;
    }
    default:
        return fail(p, t.start, t.end, "expected an expression, found %s",
                    describe(p, &t, buf, sizeof buf));
    }
}

/* primary ['^' unary]: right-associative (the exponent is itself a unary expression, which
 * may hold another '^'), binding tighter than unary minus. The exponent must fold to a
 * number: tg_pow takes a constant. */
static bool parse_power(parser *p, xref *out)
{
    if (!parse_primary(p, out))
        return false;
    if (p->tok.kind != TG_TOK_CARET)
        return true;
    if (!enter(p, p->tok.start) || !next(p))
        return false;
    xref e;
    p->fold++;
    bool ok = parse_unary(p, &e);
    p->fold--;
    if (!ok)
        return false;
    leave(p);
    tg_program *g = p->prog;
    if (g->nodes[e.node].kind != TG_X_NUM)
        return fail(p, e.start, e.end,
                    "the exponent of '^' must be a constant number "
                    "(write exp(y * log(x)) for x to a tensor power)");
    double c = g->nodes[e.node].c;
    drop(p, e.node);
    xref base = *out;
    if (p->fold && g->nodes[base.node].kind == TG_X_NUM) {
        double v = pow(g->nodes[base.node].c, c);
        drop(p, base.node);
        return emit_num(p, v, base.start, e.end, out);
    }
    uint32_t k = emit_op(p, TG_OP_POW, base.start, e.end);
    if (k == TG_EXPR_NONE)
        return false;
    g->nodes[k].a = base.node;
    g->nodes[k].c = c;
    *out = (xref){k, base.start, e.end};
    return true;
}

/* '-'* power, as a loop: a long run of minus signs cannot deepen the stack. A minus on a
 * fresh number literal folds into it, so "-0.5" is one constant. */
static bool parse_unary(parser *p, xref *out)
{
    size_t minus = 0, first = p->tok.start;
    while (p->tok.kind == TG_TOK_MINUS) {
        minus++;
        if (!next(p))
            return false;
    }
    if (!parse_power(p, out))
        return false;
    tg_program *g = p->prog;
    for (; minus > 0; minus--) {
        tg_xnode *x = &g->nodes[out->node];
        if (x->kind == TG_X_NUM && out->node + 1 == g->n_nodes && x->name == 0) {
            x->c = -x->c;
            x->start = (uint32_t)first;
            out->start = first;
            continue;
        }
        if (x->kind == TG_X_NUM && p->fold) {
            if (!emit_num(p, -x->c, first, out->end, out))
                return false;
            continue;
        }
        uint32_t k = emit_op(p, TG_OP_NEG, first, out->end);
        if (k == TG_EXPR_NONE)
            return false;
        g->nodes[k].a = out->node;
        *out = (xref){k, first, out->end};
    }
    return true;
}

static bool parse_term(parser *p, xref *out)
{
    if (!parse_unary(p, out))
        return false;
    for (;;) {
        tg_op op;
        switch (p->tok.kind) {
        case TG_TOK_STAR: op = TG_OP_MUL; break;
        case TG_TOK_SLASH: op = TG_OP_DIV; break;
        case TG_TOK_AT: op = TG_OP_MATMUL; break;
        default: return true;
        }
        xref b;
        if (!next(p) || !parse_unary(p, &b) || !binary(p, op, *out, b, out))
            return false;
    }
}

static bool parse_expr(parser *p, xref *out)
{
    if (!parse_term(p, out))
        return false;
    for (;;) {
        tg_op op;
        switch (p->tok.kind) {
        case TG_TOK_PLUS: op = TG_OP_ADD; break;
        case TG_TOK_MINUS: op = TG_OP_SUB; break;
        default: return true;
        }
        xref b;
        if (!next(p) || !parse_term(p, &b) || !binary(p, op, *out, b, out))
            return false;
    }
}

/* ---- statements -------------------------------------------------------------------------- */

static bool is_separator(tg_tok k)
{
    return k == TG_TOK_NEWLINE || k == TG_TOK_SEMI;
}

static bool skip_separators(parser *p)
{
    while (is_separator(p->tok.kind))
        if (!next(p))
            return false;
    return true;
}

static bool parse_program(parser *p)
{
    tg_program *g = p->prog;
    char buf[64];
    if (!next(p) || !skip_separators(p))
        return false;
    if (p->tok.kind == TG_TOK_EOF)
        return fail(p, p->tok.start, p->tok.start,
                    "the program is empty: it needs an expression, its output");
    for (;;) {
        tg_token first = p->tok;
        xref r;
        uint32_t bound = TG_EXPR_NONE;
        if (first.kind == TG_TOK_NAME && peek(p) == TG_TOK_ASSIGN) {
            const char *s = p->src + first.start;
            size_t n = first.end - first.start;
            tg_xfunc f;
            if (tg_expr__find_func(s, n, &f))
                return fail(p, first.start, first.end,
                            "cannot bind '%.*s': it is the name of a function", CLIP(n), s);
            if (!intern(p, s, n, &bound) || !next(p) || !next(p) || !parse_expr(p, &r))
                return false;
            /* The name refers to the new value from here on; the value is named after it
             * (for graph dumps) unless it already has a name or is an input. */
            p->syms[bound].bind = r.node;
            tg_xnode *x = &g->nodes[r.node];
            if (x->name == 0 && x->kind != TG_X_INPUT)
                x->name = p->syms[bound].name + 1;
        } else {
            if (!parse_expr(p, &r))
                return false;
            if (p->tok.kind == TG_TOK_ASSIGN)
                return fail(p, r.start, r.end, "only a name can be bound with '='");
        }
        if (p->tok.kind != TG_TOK_EOF && !is_separator(p->tok.kind))
            return fail(p, p->tok.start, p->tok.end,
                        "expected ';' or a new line after the statement, found %s",
                        describe(p, &p->tok, buf, sizeof buf));
        if (!skip_separators(p))
            return false;
        if (p->tok.kind == TG_TOK_EOF) {
            if (bound != TG_EXPR_NONE) {
                const char *nm = g->names + p->syms[bound].name;
                return fail(p, first.start, r.end,
                            "the program must end with an expression, its output (add a line "
                            "'%.*s' to output %.*s)",
                            CLIP(strlen(nm)), nm, CLIP(strlen(nm)), nm);
            }
            g->output = r.node;
            return true;
        }
        if (bound == TG_EXPR_NONE)
            return fail(p, r.start, r.end,
                        "this value is unused: bind it with 'name = ...' or "
                        "make it the last statement");
    }
}

/* ---- the public entry points -------------------------------------------------------------- */

/* Frees what a program holds; the struct itself too when `self`. */
static void release(tg_program *g, bool self)
{
    if (!g)
        return;
    if (self)
        tg__free(g->src, g->len + 1);
    tg__free(g->nodes, g->cap_nodes * sizeof *g->nodes);
    tg__free(g->lits, g->cap_lits * sizeof *g->lits);
    tg__free(g->values, g->cap_values * sizeof *g->values);
    tg__free(g->names, g->cap_names);
    tg__free(g->inputs, g->cap_inputs * sizeof *g->inputs);
    tg__free(g->input_node, g->cap_input_node * sizeof *g->input_node);
    if (self)
        tg__free(g, sizeof *g);
}

void tg_program_free(tg_program *prog)
{
    release(prog, true);
}

static void parser_done(parser *p)
{
    tg__free(p->syms, p->cap_syms * sizeof *p->syms);
    tg__free(p->table, p->cap_table * sizeof *p->table);
}

tg_status tg_program_parse_n(const char *src, size_t len, tg_expr_error *err, tg_program **out)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (out)
        *out = NULL;
    if (!src || !out)
        return tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0, "program_parse: %s is NULL",
                             src ? "out" : "src");
    if (len > TG_EXPR_MAX_SOURCE)
        return tg_expr__fail(err, TG_EFORMAT, NULL, 0, 0, 0,
                             "the program is too long (%zu bytes; at most %zu)", len,
                             TG_EXPR_MAX_SOURCE);
    tg_program *g = tg__calloc(1, sizeof *g);
    char *copy = g ? tg__malloc(len + 1) : NULL;
    if (!copy) {
        tg__free(g, sizeof *g);
        return tg_expr__fail(err, TG_ENOMEM, NULL, 0, 0, 0, "out of memory while parsing");
    }
    memcpy(copy, src, len);
    copy[len] = '\0';
    g->src = copy;
    g->len = len;
    parser p = {.prog = g, .src = copy, .len = len, .err = err, .status = TG_OK};
    bool ok = parse_program(&p);
    parser_done(&p);
    if (!ok) {
        tg_program_free(g);
        return p.status;
    }
    *out = g;
    return TG_OK;
}

tg_status tg_program_parse(const char *src, tg_program **out)
{
    return tg_program_parse_n(src, src ? strlen(src) : 0, NULL, out);
}

const char *tg_program_source(const tg_program *prog, size_t *len)
{
    if (len)
        *len = prog ? prog->len : 0;
    return prog ? prog->src : NULL;
}

size_t tg_program_input_count(const tg_program *prog)
{
    return prog ? prog->n_inputs : 0;
}

const char *tg_program_input_name(const tg_program *prog, size_t i)
{
    return prog && i < prog->n_inputs ? prog->names + prog->inputs[i] : NULL;
}

tg_status tg_expr_parse_value(const char *text, tg_dtype dtype, tg_expr_error *err, tg_tensor **out)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (out)
        *out = NULL;
    if (!text || !out)
        return tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0, "parse_value: %s is NULL",
                             text ? "out" : "text");
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0, "parse_value: unknown dtype %d",
                             (int)dtype);
    size_t len = strlen(text);
    if (len > TG_EXPR_MAX_SOURCE)
        return tg_expr__fail(err, TG_EFORMAT, NULL, 0, 0, 0, "the value is too long");
    /* A scratch program holds the literal; its source is the caller's text. */
    tg_program g = {.src = (char *)(uintptr_t)text, .len = len};
    parser p = {.prog = &g, .src = text, .len = len, .err = err, .value_mode = true};
    int rank = 0;
    size_t shape[TG_MAX_RANK] = {0}, offset = 0;
    char buf[64];
    bool ok = next(&p);
    if (ok && p.tok.kind == TG_TOK_LBRACK) {
        uint32_t lit;
        size_t start, end;
        ok = parse_list(&p, &lit, &start, &end);
        if (ok) {
            rank = g.lits[lit].rank;
            memcpy(shape, g.lits[lit].shape, sizeof shape);
            offset = g.lits[lit].offset;
        }
    } else if (ok) {
        double v;
        ok = parse_signed(&p, &v) && push_value(&p, v);
    }
    if (ok && p.tok.kind != TG_TOK_EOF)
        ok = fail(&p, p.tok.start, p.tok.end, "expected the end of the value, found %s",
                  describe(&p, &p.tok, buf, sizeof buf));
    tg_status st = ok ? TG_OK : p.status;
    if (ok) {
        const double zero = 0;
        *out = tg_tensor_from_f64(dtype, rank, shape, g.n_values ? g.values + offset : &zero);
        if (!*out)
            st = tg_expr__fail(err, tg_last_status(), NULL, 0, 0, 0, "%s", tg_last_error());
    }
    parser_done(&p);
    release(&g, false);
    return st;
}
