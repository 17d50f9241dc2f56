/* parser.h: what the three parts of the tgx parser share: its state, and the helpers each part
 * offers the others. parse.c holds the parser's machinery (tokens, errors, program storage,
 * names) and the expressions (operators, comparisons, postfix indexing); call.c the function
 * calls and their arguments, literal lists among them; program.c the statements, the entry
 * points and the value parser behind NAME=VALUE. */
#ifndef TAPEGRAD_EXPR_PARSER_H
#define TAPEGRAD_EXPR_PARSER_H

#include "expr_internal.h"

#define CLIP TG_EXPR_CLIP

/* Largest integer a double holds exactly: the bound for shape entries, class counts and
 * indices. */
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

/* ---- machinery (parse.c) --------------------------------------------------------------- */

/* A syntax error on [start, end): sets p->status; always false. */
bool tg_expr__perr(parser *p, size_t start, size_t end, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool tg_expr__oom(parser *p);
/* Moves to the next token; inside brackets (and in values) newlines are skipped. */
bool tg_expr__next(parser *p);
/* The kind of the token after the current one (TG_TOK_EOF for a lexical error, which is
 * reported when it is reached), newlines skipped where tg_expr__next skips them. */
tg_tok tg_expr__peek(parser *p);
/* How a token reads in "found ..." messages. */
const char *tg_expr__describe(const parser *p, const tg_token *t, char *buf, size_t size);

/* A new node of `kind` spanning [start, end), or TG_EXPR_NONE (the error set). */
uint32_t tg_expr__emit(parser *p, tg_xkind kind, size_t start, size_t end);
uint32_t tg_expr__emit_op(parser *p, tg_op op, size_t start, size_t end);
bool tg_expr__emit_num(parser *p, double v, size_t start, size_t end, xref *out);
/* Forgets a number node that folding consumed, when nothing else can refer to it. */
void tg_expr__drop(parser *p, uint32_t k);
bool tg_expr__push_value(parser *p, double v);
/* Appends nodes[0..n) to prog->args; *at is where they start. */
bool tg_expr__push_args(parser *p, const uint32_t *nodes, size_t n, uint32_t *at);

/* The symbol for the name s[0..n), created (unbound) on first sight. */
bool tg_expr__intern(parser *p, const char *s, size_t n, uint32_t *out);

/* Nesting against TG_EXPR_MAX_DEPTH: enter fails beyond it. */
bool tg_expr__enter(parser *p, size_t at);
void tg_expr__leave(parser *p);

/* ---- expressions (parse.c) --------------------------------------------------------------- */

/* An expression: a comparison or an arithmetic expression. */
bool tg_expr__parse_expr(parser *p, xref *out);
/* A constant: an expression that folds to one number. `what` (and the function fn, when not
 * NULL) name it in the error; span, when not NULL, receives where it is written. */
bool tg_expr__parse_const(parser *p, double *v, const char *what, const char *fn, xref *span);
/* A constant integer (|v| <= 2^53); `what` names it ("the index") in errors. With `far` (a
 * slice's bound or step, which clamp as NumPy's do) an integer beyond 2^53, past the end of any
 * axis, is taken as +-2^53 and *far set, rather than refused. */
bool tg_expr__parse_int(parser *p, int64_t *v, const char *what, const char *fn, xref *span,
                        bool *far);

/* base ^ e (both parsed): pow with a constant exponent, folded when base is a number while
 * folding; pow_tensor when e is not a number. What '^' and pow(x, y) record. */
bool tg_expr__power(parser *p, xref base, xref e, xref *out);

/* ---- calls and lists (call.c) -------------------------------------------------------------- */

/* name(args): the current token is the name, the next is '('. */
bool tg_expr__parse_call(parser *p, xref *out);
/* A whole list literal into a new literal entry; the current token is its '['. */
bool tg_expr__parse_list(parser *p, uint32_t *lit, size_t *start, size_t *end);
/* In values: a number with an optional sign, or nan, inf, infinity (any case). */
bool tg_expr__parse_signed(parser *p, double *v);

/* ---- the program (program.c) --------------------------------------------------------------- */

/* Frees what a program holds; the struct itself too when `self`. */
void tg_expr__release(tg_program *g, bool self);
/* Frees the parser's own tables (not the program). */
void tg_expr__parser_done(parser *p);

#endif
