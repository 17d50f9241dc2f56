/* program.c: tgx programs as a whole (docs/tgx.md, "Programs"): statements, bindings and the
 * output, the entry points that parse a program and free it, its inputs, and the value parser
 * behind NAME=VALUE (a number or a nested list, no expressions). */
#include "parser.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- statements -------------------------------------------------------------------------- */

static bool is_separator(tg_tok k)
{
    return k == TG_TOK_NEWLINE || k == TG_TOK_SEMI;
}

static bool skip_separators(parser *p)
{
    while (is_separator(p->tok.kind))
        if (!tg_expr__next(p))
            return false;
    return true;
}

static bool parse_program(parser *p)
{
    tg_program *g = p->prog;
    char buf[64];
    if (!tg_expr__next(p) || !skip_separators(p))
        return false;
    if (p->tok.kind == TG_TOK_EOF)
        return tg_expr__perr(p, p->tok.start, p->tok.start,
                             "the program is empty: it needs an expression, its output");
    for (;;) {
        tg_token first = p->tok;
        xref r;
        uint32_t bound = TG_EXPR_NONE;
        if (first.kind == TG_TOK_NAME && tg_expr__peek(p) == TG_TOK_ASSIGN) {
            const char *s = p->src + first.start;
            size_t n = first.end - first.start;
            tg_xfunc f;
            if (tg_expr__find_func(s, n, &f))
                return tg_expr__perr(p, first.start, first.end,
                                     "cannot bind '%.*s': it is the name of a function", CLIP(n),
                                     s);
            if (!tg_expr__intern(p, s, n, &bound) || !tg_expr__next(p) || !tg_expr__next(p))
                return false;
            /* Arithmetic on numbers folds, so a name bound to a constant expression
             * (k = 1/3) is a number wherever a constant is required ([k, 1], x^k). */
            p->fold++;
            bool ok = tg_expr__parse_expr(p, &r);
            p->fold--;
            if (!ok)
                return false;
            /* The name refers to the new value from here on; the value is named after it
             * (for graph dumps) unless it already has a name or is an input. */
            p->syms[bound].bind = r.node;
            tg_xnode *x = &g->nodes[r.node];
            if (x->name == 0 && x->kind != TG_X_INPUT)
                x->name = p->syms[bound].name + 1;
        } else {
            if (!tg_expr__parse_expr(p, &r))
                return false;
            if (p->tok.kind == TG_TOK_ASSIGN)
                return tg_expr__perr(p, r.start, r.end, "only a name can be bound with '='");
        }
        if (p->tok.kind != TG_TOK_EOF && !is_separator(p->tok.kind))
            return tg_expr__perr(p, p->tok.start, p->tok.end,
                                 "expected ';' or a new line after the statement, found %s",
                                 tg_expr__describe(p, &p->tok, buf, sizeof buf));
        if (!skip_separators(p))
            return false;
        if (p->tok.kind == TG_TOK_EOF) {
            if (bound != TG_EXPR_NONE) {
                const char *nm = g->names + p->syms[bound].name;
                return tg_expr__perr(
                    p, first.start, r.end,
                    "the program must end with an expression, its output (add a line "
                    "'%.*s' to output %.*s)",
                    CLIP(strlen(nm)), nm, CLIP(strlen(nm)), nm);
            }
            g->output = r.node;
            return true;
        }
        if (bound == TG_EXPR_NONE)
            return tg_expr__perr(p, r.start, r.end,
                                 "this value is unused: bind it with 'name = ...' or "
                                 "make it the last statement");
    }
}

/* ---- the public entry points -------------------------------------------------------------- */

/* Frees what a program holds; the struct itself too when `self`. */
void tg_expr__release(tg_program *g, bool self)
{
    if (!g)
        return;
    if (self)
        tg__free(g->src, g->len + 1);
    tg__free(g->nodes, g->cap_nodes * sizeof *g->nodes);
    tg__free(g->lits, g->cap_lits * sizeof *g->lits);
    tg__free(g->values, g->cap_values * sizeof *g->values);
    tg__free(g->args, g->cap_args * sizeof *g->args);
    tg__free(g->names, g->cap_names);
    tg__free(g->inputs, g->cap_inputs * sizeof *g->inputs);
    tg__free(g->input_node, g->cap_input_node * sizeof *g->input_node);
    if (self)
        tg__free(g, sizeof *g);
}

void tg_program_free(tg_program *prog)
{
    tg_expr__release(prog, true);
}

void tg_expr__parser_done(parser *p)
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
    tg_expr__parser_done(&p);
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
    bool ok = tg_expr__next(&p);
    if (ok && p.tok.kind == TG_TOK_LBRACK) {
        uint32_t lit;
        size_t start, end;
        ok = tg_expr__parse_list(&p, &lit, &start, &end);
        if (ok) {
            rank = g.lits[lit].rank;
            memcpy(shape, g.lits[lit].shape, sizeof shape);
            offset = g.lits[lit].offset;
        }
    } else if (ok) {
        double v;
        ok = tg_expr__parse_signed(&p, &v) && tg_expr__push_value(&p, v);
    }
    if (ok && p.tok.kind != TG_TOK_EOF)
        ok = tg_expr__perr(&p, p.tok.start, p.tok.end, "expected the end of the value, found %s",
                           tg_expr__describe(&p, &p.tok, buf, sizeof buf));
    /* A finite number that f32 cannot hold would become inf without a word; f64's limit is
     * the lexer's ("too large for a double"). */
    for (size_t i = 0; ok && dtype == TG_F32 && i < g.n_values; i++)
        if (tg__f32_overflows(g.values[i]))
            ok = tg_expr__fail(err, TG_EFORMAT, text, len, 0, len,
                               "number %.9g is too large for f32 (the largest is %.9g)",
                               g.values[i], (double)FLT_MAX) == TG_OK;
    tg_status st = ok ? TG_OK : p.status != TG_OK ? p.status : TG_EFORMAT;
    if (ok) {
        const double zero = 0;
        *out = tg_tensor_from_f64(dtype, rank, shape, g.n_values ? g.values + offset : &zero);
        if (!*out)
            st = tg_expr__fail(err, tg_last_status(), NULL, 0, 0, 0, "%s", tg_last_error());
    }
    tg_expr__parser_done(&p);
    tg_expr__release(&g, false);
    return st;
}
