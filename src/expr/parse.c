/* parse.c: the tgx parser's machinery and its expressions (docs/tgx.md, "Grammar"): tokens
 * and errors, the program's storage, names, and the operators from comparisons down to
 * postfix indexing and primaries. Recursive descent with one token of lookahead that emits the
 * program's flat node array directly; calls and lists are in call.c, statements in program.c.
 * Chains of binary operators, of unary minus and of postfix brackets are loops, and everything
 * that nests (parentheses, calls, lists, brackets, '^') counts against TG_EXPR_MAX_DEPTH, so
 * hostile input gets an error, never a stack overflow. */
#include "parser.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool tg_expr__perr(parser *p, size_t start, size_t end, const char *fmt, ...)
{
    char msg[sizeof p->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->status = tg_expr__fail(p->err, TG_EFORMAT, p->src, p->len, start, end, "%s", msg);
    return false;
}

bool tg_expr__oom(parser *p)
{
    p->status = tg_expr__fail(p->err, TG_ENOMEM, NULL, 0, 0, 0, "out of memory while parsing");
    return false;
}

/* Moves to the next token; inside brackets (and in values) newlines are skipped. */
bool tg_expr__next(parser *p)
{
    for (;;) {
        if (!tg_expr__lex(p->src, p->len, p->pos, p->value_mode, &p->tok, p->lexmsg,
                          sizeof p->lexmsg))
            return tg_expr__perr(p, p->tok.start, p->tok.end, "%s", p->lexmsg);
        p->pos = p->tok.end;
        if (p->tok.kind == TG_TOK_NEWLINE && (p->nest > 0 || p->value_mode))
            continue;
        return true;
    }
}

/* The kind of the token after the current one (TG_TOK_EOF when it would be a lexical error,
 * which is reported when it is reached). Newlines are skipped where tg_expr__next skips them,
 * so the token seen is the one reading goes on with: inside brackets "relu\n(x)" is a call. */
tg_tok tg_expr__peek(parser *p)
{
    tg_token t;
    char msg[sizeof p->lexmsg]; /* the error is reported when the token is reached */
    size_t pos = p->pos;
    for (;;) {
        if (!tg_expr__lex(p->src, p->len, pos, p->value_mode, &t, msg, sizeof msg))
            return TG_TOK_EOF;
        if (t.kind != TG_TOK_NEWLINE || !(p->nest > 0 || p->value_mode))
            return t.kind;
        pos = t.end;
    }
}

/* How a token reads in "found ..." messages. */
const char *tg_expr__describe(const parser *p, const tg_token *t, char *buf, size_t size)
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

uint32_t tg_expr__emit(parser *p, tg_xkind kind, size_t start, size_t end)
{
    tg_program *g = p->prog;
    if (g->n_nodes >= UINT32_MAX - 1) {
        tg_expr__perr(p, start, end, "the program has too many operations");
        return TG_EXPR_NONE;
    }
    if (tg__grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes,
                 "tgx nodes") != TG_OK) {
        tg_expr__oom(p);
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

bool tg_expr__emit_num(parser *p, double v, size_t start, size_t end, xref *out)
{
    uint32_t k = tg_expr__emit(p, TG_X_NUM, start, end);
    if (k == TG_EXPR_NONE)
        return false;
    p->prog->nodes[k].c = v;
    *out = (xref){k, start, end};
    return true;
}

/* Forgets a number node that folding consumed, when nothing else can refer to it: it is the
 * last node and no name is bound to it. */
void tg_expr__drop(parser *p, uint32_t k)
{
    tg_program *g = p->prog;
    if (k + 1 == g->n_nodes && g->nodes[k].kind == TG_X_NUM && g->nodes[k].name == 0)
        g->n_nodes--;
}

bool tg_expr__push_args(parser *p, const uint32_t *nodes, size_t n, uint32_t *at)
{
    tg_program *g = p->prog;
    if (g->n_args + n >= UINT32_MAX || tg__grow((void **)&g->args, &g->cap_args, g->n_args + n,
                                                sizeof *g->args, "tgx lists") != TG_OK)
        return tg_expr__oom(p);
    if (n) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(g->args + g->n_args, nodes, n * sizeof *nodes);
    *at = (uint32_t)g->n_args;
    g->n_args += n;
    return true;
}

bool tg_expr__push_value(parser *p, double v)
{
    tg_program *g = p->prog;
    if (tg__grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values,
                 "tgx literal") != TG_OK)
        return tg_expr__oom(p);
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

static bool rehash(parser *p)
{
    size_t cap = p->cap_table ? p->cap_table * 2 : 64;
    if (cap > SIZE_MAX / sizeof(uint32_t))
        return tg_expr__oom(p);
    uint32_t *t = tg__calloc(cap, sizeof *t);
    if (!t)
        return tg_expr__oom(p);
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
bool tg_expr__intern(parser *p, const char *s, size_t n, uint32_t *out)
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
        return tg_expr__oom(p);
    memcpy(g->names + g->n_names, s, n);
    g->names[g->n_names + n] = '\0';
    p->syms[p->n_syms] = (sym){(uint32_t)g->n_names, TG_EXPR_NONE};
    g->n_names += n + 1;
    p->table[h] = (uint32_t)(p->n_syms + 1);
    *out = (uint32_t)p->n_syms++;
    return true;
}

/* ---- expressions ------------------------------------------------------------------------- */

bool tg_expr__parse_expr(parser *p, xref *out);
static bool parse_unary(parser *p, xref *out);

bool tg_expr__enter(parser *p, size_t at)
{
    if (++p->depth > TG_EXPR_MAX_DEPTH)
        return tg_expr__perr(p, at, at + 1, "expression nested too deeply (more than %d levels)",
                             TG_EXPR_MAX_DEPTH);
    return true;
}

void tg_expr__leave(parser *p)
{
    p->depth--;
}

/* A constant: an expression that folds to one number (literals, + - * / ^, parentheses,
 * names bound to numbers). `what` names it in the error. */
bool tg_expr__parse_const(parser *p, double *v, const char *what, const char *fn, xref *span)
{
    xref r;
    p->fold++;
    bool ok = tg_expr__parse_expr(p, &r);
    p->fold--;
    if (!ok)
        return false;
    const tg_xnode *x = &p->prog->nodes[r.node];
    if (x->kind != TG_X_NUM)
        return tg_expr__perr(p, r.start, r.end, "%s%s%s%s must be a constant number", what,
                             fn ? " of '" : "", fn ? fn : "", fn ? "'" : "");
    *v = x->c;
    if (span)
        *span = r;
    tg_expr__drop(p, r.node);
    return true;
}

bool tg_expr__parse_int(parser *p, int64_t *v, const char *what, const char *fn, xref *span,
                        bool *far)
{
    if (far)
        *far = false;
    xref r;
    p->fold++;
    bool ok = tg_expr__parse_expr(p, &r);
    p->fold--;
    if (!ok)
        return false;
    const tg_xnode *x = &p->prog->nodes[r.node];
    const char *of = fn ? " of '" : "", *f = fn ? fn : "", *q = fn ? "'" : "";
    if (x->kind != TG_X_NUM)
        return tg_expr__perr(p, r.start, r.end, "%s%s%s%s must be a constant integer", what, of, f,
                             q);
    double d = x->c;
    if (d != floor(d) || isnan(d) || isinf(d))
        return tg_expr__perr(p, r.start, r.end, "%s%s%s%s must be an integer, not %g", what, of, f,
                             q, d);
    if (fabs(d) > MAX_EXACT_INT && !far)
        return tg_expr__perr(p, r.start, r.end,
                             "%s%s%s%s is %g, beyond 2^53 (no axis is that long)", what, of, f, q,
                             d);
    if (fabs(d) > MAX_EXACT_INT) {
        d = copysign(MAX_EXACT_INT, d);
        *far = true;
    }
    *v = (int64_t)d;
    if (span)
        *span = r;
    tg_expr__drop(p, r.node);
    return true;
}

/* A node of op (the kind TG_X_OP) spanning [start, end), or TG_EXPR_NONE. */
uint32_t tg_expr__emit_op(parser *p, tg_op op, size_t start, size_t end)
{
    uint32_t k = tg_expr__emit(p, TG_X_OP, start, end);
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
        tg_expr__drop(p, b.node);
        tg_expr__drop(p, a.node);
        return tg_expr__emit_num(p, v, a.start, b.end, out);
    }
    uint32_t k = tg_expr__emit_op(p, op, a.start, b.end);
    if (k == TG_EXPR_NONE)
        return false;
    g->nodes[k].a = a.node;
    g->nodes[k].b = b.node;
    *out = (xref){k, a.start, b.end};
    return true;
}

bool tg_expr__power(parser *p, xref base, xref e, xref *out)
{
    tg_program *g = p->prog;
    if (g->nodes[e.node].kind != TG_X_NUM) /* a tensor exponent */
        return binary(p, TG_OP_POW_TENSOR, base, e, out);
    double c = g->nodes[e.node].c;
    tg_expr__drop(p, e.node);
    if (p->fold && g->nodes[base.node].kind == TG_X_NUM) {
        double v = pow(g->nodes[base.node].c, c);
        tg_expr__drop(p, base.node);
        return tg_expr__emit_num(p, v, base.start, e.end, out);
    }
    uint32_t k = tg_expr__emit_op(p, TG_OP_POW, base.start, e.end);
    if (k == TG_EXPR_NONE)
        return false;
    g->nodes[k].a = base.node;
    g->nodes[k].c = c;
    *out = (xref){k, base.start, e.end};
    return true;
}

/* A name that is not called: a binding made earlier, or else a new input. */
static bool parse_name(parser *p, xref *out)
{
    tg_token t = p->tok;
    const char *s = p->src + t.start;
    size_t n = t.end - t.start;
    tg_xfunc f;
    if (tg_expr__find_func(s, n, &f)) {
        /* A lexical error right after the name (a no-break space pasted before its '(', say)
         * is what the reader must see: the call may be written right but for it. */
        if (!tg_expr__next(p))
            return false;
        return tg_expr__perr(p, t.start, t.end, "'%.*s' is a function: call it as %.*s(...)",
                             CLIP(n), s, CLIP(n), s);
    }
    uint32_t id;
    if (!tg_expr__intern(p, s, n, &id))
        return false;
    tg_program *g = p->prog;
    if (p->syms[id].bind == TG_EXPR_NONE) {
        uint32_t k = tg_expr__emit(p, TG_X_INPUT, t.start, t.end);
        if (k == TG_EXPR_NONE)
            return false;
        size_t i = g->n_inputs;
        if (tg__grow((void **)&g->inputs, &g->cap_inputs, i + 1, sizeof *g->inputs, "tgx inputs") !=
                TG_OK ||
            tg__grow((void **)&g->input_node, &g->cap_input_node, i + 1, sizeof *g->input_node,
                     "tgx inputs") != TG_OK)
            return tg_expr__oom(p);
        g->inputs[i] = p->syms[id].name;
        g->input_node[i] = k;
        g->nodes[k].lit = (uint32_t)i;
        g->n_inputs++;
        p->syms[id].bind = k;
    }
    *out = (xref){p->syms[id].bind, t.start, t.end};
    return tg_expr__next(p);
}

/* In values: a number with an optional sign, or nan, inf, infinity (any case). */
static bool parse_primary(parser *p, xref *out)
{
    tg_token t = p->tok;
    char buf[64];
    switch (t.kind) {
    case TG_TOK_NUM: return tg_expr__emit_num(p, t.num, t.start, t.end, out) && tg_expr__next(p);
    case TG_TOK_NAME:
        return tg_expr__peek(p) == TG_TOK_LPAREN ? tg_expr__parse_call(p, out) : parse_name(p, out);
    case TG_TOK_LPAREN: {
        if (!tg_expr__enter(p, t.start))
            return false;
        p->nest++;
        if (!tg_expr__next(p) || !tg_expr__parse_expr(p, out))
            return false;
        if (p->tok.kind != TG_TOK_RPAREN) {
            int line, col;
            tg_expr__locate(p->src, p->len, t.start, &line, &col);
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ')' to close the '(' at %d:%d, "
                                 "found %s",
                                 line, col, tg_expr__describe(p, &p->tok, buf, sizeof buf));
        }
        out->start = t.start;
        out->end = p->tok.end;
        p->nest--;
        if (!tg_expr__next(p))
            return false;
        tg_expr__leave(p);
        return true;
    }
    case TG_TOK_LBRACK: {
        uint32_t lit;
        size_t start, end;
        if (!tg_expr__parse_list(p, &lit, &start, &end))
            return false;
        uint32_t k = tg_expr__emit(p, TG_X_LIST, start, end);
        if (k == TG_EXPR_NONE)
            return false;
        p->prog->nodes[k].lit = lit;
        *out = (xref){k, start, end};
        return true;
    }
    default:
        return tg_expr__perr(p, t.start, t.end, "expected an expression, found %s",
                             tg_expr__describe(p, &t, buf, sizeof buf));
    }
}

/* ---- postfix indexing ------------------------------------------------------------------- */

static bool at_item_end(tg_tok k)
{
    return k == TG_TOK_COMMA || k == TG_TOK_RBRACK;
}

/* One item of x[...] ("i", "start:stop", "start:stop:step", each bound optional in a slice)
 * as a TG_X_INDEX node on *cur, which it replaces. `item` is its place in the brackets and
 * `dropped` the integer items before it, whose axes are gone from *cur. */
static bool parse_item(parser *p, xref *cur, uint32_t item, uint32_t *dropped)
{
    size_t start = p->tok.start, end = p->tok.end;
    int64_t from = 0, to = TG_EXPR_OPEN_STOP, step = 1;
    bool select = true, far = false; /* far: from is beyond 2^53, a slice's start clamped */
    xref r, from_at = {0, start, end};
    if (p->tok.kind != TG_TOK_COLON) {
        if (!tg_expr__parse_int(p, &from, "an index", NULL, &r, &far))
            return false;
        end = r.end;
        from_at = r;
    }
    if (p->tok.kind == TG_TOK_COLON) {
        select = false;
        end = p->tok.end;
        if (!tg_expr__next(p))
            return false;
        if (p->tok.kind != TG_TOK_COLON && !at_item_end(p->tok.kind)) {
            bool clamped;
            if (!tg_expr__parse_int(p, &to, "the stop of a slice", NULL, &r, &clamped))
                return false;
            end = r.end;
        }
        if (p->tok.kind == TG_TOK_COLON) {
            end = p->tok.end;
            if (!tg_expr__next(p))
                return false;
            if (!at_item_end(p->tok.kind)) {
                bool clamped;
                if (!tg_expr__parse_int(p, &step, "the step of a slice", NULL, &r, &clamped))
                    return false;
                end = r.end;
                if (step <= 0)
                    return tg_expr__perr(
                        p, r.start, r.end,
                        "the step of a slice must be positive, not %lld (tgx has no reversed "
                        "slices)",
                        (long long)step);
            }
        }
    }
    if (select && far)
        return tg_expr__perr(p, from_at.start, from_at.end,
                             "an index is beyond 2^53 (no axis is that long)");
    uint32_t k = tg_expr__emit(p, TG_X_INDEX, start, end);
    if (k == TG_EXPR_NONE)
        return false;
    tg_xnode *x = &p->prog->nodes[k];
    x->a = cur->node;
    x->select = select;
    x->item = item;
    x->axis = (int32_t)(item - *dropped);
    x->from = from;
    x->to = to;
    x->step = step;
    *dropped += select;
    cur->node = k;
    return true;
}

/* '[' item { ',' item } [ ','] ']' after the value *out (the current token is the '['):
 * NumPy basic indexing, one node per item, the axes of later items shifted past those that
 * integer items drop. Whether there are more items than axes, and whether an integer is in
 * range, is known when the program runs (eval.c), with each item's span for the caret. */
static bool parse_index(parser *p, xref *out)
{
    tg_token open = p->tok;
    char buf[64];
    if (!tg_expr__enter(p, open.start))
        return false;
    p->nest++;
    if (!tg_expr__next(p))
        return false;
    if (p->tok.kind == TG_TOK_RBRACK)
        return tg_expr__perr(p, open.start, p->tok.end,
                             "empty brackets: an index needs at least one item (x[:] for all "
                             "of x)");
    xref cur = *out;
    uint32_t n = 0, dropped = 0;
    uint32_t items[TG_MAX_RANK];
    while (p->tok.kind != TG_TOK_RBRACK) {
        if (n == TG_MAX_RANK)
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "too many indices: a tensor has at most %d axes", TG_MAX_RANK);
        if (!parse_item(p, &cur, n, &dropped))
            return false;
        items[n++] = cur.node;
        if (p->tok.kind == TG_TOK_COMMA) {
            if (!tg_expr__next(p))
                return false;
        } else if (p->tok.kind == TG_TOK_COLON) {
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "a slice has at most three parts, start:stop:step");
        } else if (p->tok.kind != TG_TOK_RBRACK) {
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ',' or ']' after an index, found %s",
                                 tg_expr__describe(p, &p->tok, buf, sizeof buf));
        }
    }
    for (uint32_t i = 0; i < n; i++)
        p->prog->nodes[items[i]].n_items = n;
    *out = (xref){cur.node, out->start, p->tok.end};
    p->nest--;
    if (!tg_expr__next(p))
        return false;
    tg_expr__leave(p);
    return true;
}

/* primary { '[' items ']' }: indexing binds tighter than '^' and unary minus, so -x[0]^2 is
 * -((x[0])^2). A loop: x[0][0][0]... does not deepen the stack. */
static bool parse_postfix(parser *p, xref *out)
{
    if (!parse_primary(p, out))
        return false;
    while (p->tok.kind == TG_TOK_LBRACK)
        if (!parse_index(p, out))
            return false;
    return true;
}

/* ---- operators ----------------------------------------------------------------------------- */

/* postfix ['^' unary]: right-associative (the exponent is itself a unary expression, which
 * may hold another '^'), binding tighter than unary minus. An exponent that folds to a number
 * records pow (tg_pow, a constant exponent); any other, pow_tensor (a tensor exponent, with a
 * gradient of its own). */
static bool parse_power(parser *p, xref *out)
{
    if (!parse_postfix(p, out))
        return false;
    if (p->tok.kind != TG_TOK_CARET)
        return true;
    if (!tg_expr__enter(p, p->tok.start) || !tg_expr__next(p))
        return false;
    xref e;
    p->fold++;
    bool ok = parse_unary(p, &e);
    p->fold--;
    if (!ok)
        return false;
    tg_expr__leave(p);
    return tg_expr__power(p, *out, e, out);
}

/* '-'* power, as a loop: a long run of minus signs cannot deepen the stack. A minus on a
 * fresh number literal folds into it, so "-0.5" is one constant. */
static bool parse_unary(parser *p, xref *out)
{
    size_t minus = 0, first = p->tok.start;
    while (p->tok.kind == TG_TOK_MINUS) {
        minus++;
        if (!tg_expr__next(p))
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
            if (!tg_expr__emit_num(p, -x->c, first, out->end, out))
                return false;
            continue;
        }
        uint32_t k = tg_expr__emit_op(p, TG_OP_NEG, first, out->end);
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
        if (!tg_expr__next(p) || !parse_unary(p, &b) || !binary(p, op, *out, b, out))
            return false;
    }
}

/* term { ('+' | '-') term } */
static bool parse_arith(parser *p, xref *out)
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
        if (!tg_expr__next(p) || !parse_term(p, &b) || !binary(p, op, *out, b, out))
            return false;
    }
}

static bool is_comparison(tg_tok k)
{
    return k >= TG_TOK_LT && k <= TG_TOK_NE;
}

/* The op of a comparison token. */
static const tg_op COMPARISON_OPS[] = {TG_OP_LT, TG_OP_LE, TG_OP_GT, TG_OP_GE, TG_OP_EQ, TG_OP_NE};

/* arith [ ('<' | '<=' | '>' | '>=' | '==' | '!=') arith ]: the loosest operators, as in Python
 * (2*x > 1 compares 2*x), giving a 0/1 mask. They do not chain: a < b < c would compare the
 * mask of a < b with c, never what it reads as, so it is an error. While folding, numbers
 * compare to 1 or 0. */
bool tg_expr__parse_expr(parser *p, xref *out)
{
    if (!parse_arith(p, out))
        return false;
    if (!is_comparison(p->tok.kind))
        return true;
    tg_token optok = p->tok;
    const tg_op op = COMPARISON_OPS[optok.kind - TG_TOK_LT];
    xref b;
    if (!tg_expr__next(p) || !parse_arith(p, &b))
        return false;
    if (is_comparison(p->tok.kind)) {
        int n1 = (int)(optok.end - optok.start), n2 = (int)(p->tok.end - p->tok.start);
        return tg_expr__perr(p, p->tok.start, p->tok.end,
                             "comparisons do not chain: a %.*s b %.*s c would compare the 0/1 "
                             "mask of a %.*s b with c; combine masks with * ((a %.*s b) * (b "
                             "%.*s c)) or choose values with where",
                             n1, p->src + optok.start, n2, p->src + p->tok.start, n1,
                             p->src + optok.start, n1, p->src + optok.start, n2,
                             p->src + p->tok.start);
    }
    tg_program *g = p->prog;
    const tg_xnode *na = &g->nodes[out->node], *nb = &g->nodes[b.node];
    if (p->fold && na->kind == TG_X_NUM && nb->kind == TG_X_NUM) {
        double x = na->c, y = nb->c;
        bool v = optok.kind == TG_TOK_LT   ? x < y
                 : optok.kind == TG_TOK_LE ? x <= y
                 : optok.kind == TG_TOK_GT ? x > y
                 : optok.kind == TG_TOK_GE ? x >= y
                 : optok.kind == TG_TOK_EQ ? x == y
                                           : x != y;
        size_t start = out->start;
        tg_expr__drop(p, b.node);
        tg_expr__drop(p, out->node);
        return tg_expr__emit_num(p, v ? 1 : 0, start, b.end, out);
    }
    return binary(p, op, *out, b, out);
}
