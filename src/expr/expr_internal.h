/* expr_internal.h: what the parts of tgx share: the lexer (lex.c), the functions of the
 * language (funcs.c), the parser (parse.c), the evaluator (eval.c) and the diagnostics
 * (diag.c). A program is kept as a flat array of nodes in evaluation order (operands always
 * come before their users), so evaluating and freeing it never recurse. */
#ifndef TAPEGRAD_EXPR_INTERNAL_H
#define TAPEGRAD_EXPR_INTERNAL_H

#include "core/core.h"

/* "No node / no symbol": the parser's failure value for node indices. */
#define TG_EXPR_NONE UINT32_MAX

/* A name's length as messages show it (expr.h: TG_EXPR_NAME_SHOWN). */
#define TG_EXPR_CLIP(n) ((int)((n) < TG_EXPR_NAME_SHOWN ? (n) : TG_EXPR_NAME_SHOWN))

/* Whether the NUL-terminated `name` is s[0..n). */
static inline bool tg_expr__same_name(const char *name, const char *s, size_t n)
{
    return strncmp(name, s, n) == 0 && name[n] == '\0';
}

/* ---- the program ----------------------------------------------------------------------- */

/* Node kinds: literals, inputs, an op of the op table (operators and most functions), one
 * item of an indexing expression, and the functions built from ops (the nn layer's losses and
 * onehot). */
typedef enum tg_xkind {
    TG_X_NUM,   /* number literal: c */
    TG_X_LIST,  /* tensor literal: lits[lit] */
    TG_X_INPUT, /* a free name: inputs[lit] */
    TG_X_OP,    /* op, with its attributes (tapegrad/ops.h): TG_ATTR_CONSTANT c,
                 * TG_ATTR_RANGE c and c2, TG_ATTR_AXIS and TG_ATTR_REDUCE axis,
                 * TG_ATTR_SHAPE and TG_ATTR_AXES lits[lit] (a 1-D list of integers; a shape
                 * may hold one -1), TG_ATTR_SLICE axis, from, to and step, TG_ATTR_INDEX axis
                 * and from. Operands a and b, or for more than two (where, concat, stack)
                 * args[arg .. arg+n_args). */
    TG_X_INDEX, /* one item of x[...] on operand a: an integer (select: from) or a slice
                 * (from, to, step), applied to `axis` of a (see tg_xnode) */
    TG_X_MSE,
    TG_X_BCE,
    TG_X_BCE_LOGITS,
    TG_X_CROSS_ENTROPY,
    TG_X_ONEHOT, /* n classes: c */
} tg_xkind;

/* The stop of a slice item left out ("to the end"; TG_END when evaluated). An open start is
 * 0 and an open step 1. */
#define TG_EXPR_OPEN_STOP INT64_MAX

typedef struct tg_xnode {
    uint8_t kind;           /* tg_xkind */
    uint8_t op;             /* TG_X_OP: the tg_op */
    bool select;            /* TG_X_INDEX: an integer index (the axis is dropped), else a slice */
    int32_t axis;           /* TG_X_OP with an axis; TG_X_INDEX: the axis of a it applies to */
    uint32_t a, b;          /* operand node indices (TG_EXPR_NONE when unused) */
    uint32_t lit;           /* TG_X_LIST, a shape or axes: literal index; TG_X_INPUT: input index */
    uint32_t arg, n_args;   /* TG_X_OP of more than two operands: they are args[arg ..] */
    uint32_t name;          /* offset+1 into names of the name an assignment gave it; 0: none */
    uint32_t start, end;    /* source span [start, end): for TG_X_INDEX, the item's own */
    uint32_t item;          /* TG_X_INDEX: its place among the items in the brackets (the axis
                             * of the indexed value it applies to); `axis` is item minus the
                             * integer items before it, whose axes are gone */
    uint32_t n_items;       /* TG_X_INDEX: the number of items in the brackets */
    double c, c2;           /* see tg_xkind */
    int64_t from, to, step; /* TG_X_INDEX and slice/select calls; see tg_xkind */
} tg_xnode;

/* A tensor literal (or a shape list): values[offset .. offset+numel). */
typedef struct tg_xlit {
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t offset, numel;
} tg_xlit;

struct tg_program {
    char *src; /* a NUL-terminated copy of the source */
    size_t len;
    tg_xnode *nodes;
    size_t n_nodes, cap_nodes;
    tg_xlit *lits;
    size_t n_lits, cap_lits;
    double *values; /* literal elements */
    size_t n_values, cap_values;
    uint32_t *args; /* operand lists of nodes with more than two operands */
    size_t n_args, cap_args;
    char *names; /* NUL-terminated names, back to back; referenced by offset */
    size_t n_names, cap_names;
    uint32_t *inputs;     /* per input: offset of its name in `names` */
    uint32_t *input_node; /* per input: its TG_X_INPUT node (its first use) */
    size_t n_inputs, cap_inputs, cap_input_node;
    uint32_t output; /* the node of the last statement */
};

/* ---- the lexer (lex.c) ------------------------------------------------------------------- */

typedef enum tg_tok {
    TG_TOK_EOF,
    TG_TOK_NEWLINE,
    TG_TOK_SEMI,
    TG_TOK_NUM,
    TG_TOK_NAME,
    TG_TOK_PLUS,
    TG_TOK_MINUS,
    TG_TOK_STAR,
    TG_TOK_SLASH,
    TG_TOK_AT,
    TG_TOK_CARET,
    TG_TOK_LPAREN,
    TG_TOK_RPAREN,
    TG_TOK_LBRACK,
    TG_TOK_RBRACK,
    TG_TOK_COMMA,
    TG_TOK_COLON,
    TG_TOK_ASSIGN,
    TG_TOK_LT, /* the comparisons, in the order of their ops: lt le gt ge eq ne */
    TG_TOK_LE,
    TG_TOK_GT,
    TG_TOK_GE,
    TG_TOK_EQ,
    TG_TOK_NE,
} tg_tok;

typedef struct tg_token {
    tg_tok kind;
    size_t start, end; /* byte span */
    double num;        /* TG_TOK_NUM */
} tg_token;

/* Reads the token at `pos` of src[0..len) into t, skipping blanks and comments. False for a
 * lexical error, with the reason in msg[0..size) and t's span on the offending bytes. `value`:
 * src is a NAME=VALUE value, which has no expressions (so no hint to write a product). */
bool tg_expr__lex(const char *src, size_t len, size_t pos, bool value, tg_token *t, char *msg,
                  size_t size);

/* ---- functions (funcs.c) ------------------------------------------------------------------ */

/* What a function argument must be: any expression, a list of expressions, a constant integer
 * axis, a constant number, a constant non-negative integer, a constant integer (a slice
 * bound, an index), a list of integers (a shape), or a list of axes. */
typedef enum tg_xarg {
    TG_XARG_TENSOR,
    TG_XARG_TENSORS,
    TG_XARG_AXIS,
    TG_XARG_NUMBER,
    TG_XARG_COUNT,
    TG_XARG_INT,
    TG_XARG_SHAPE,
    TG_XARG_AXES,
} tg_xarg;

#define TG_XFUNC_MAX_ARGS 5

typedef struct tg_xfunc {
    const char *name;
    tg_xkind kind; /* TG_X_OP, or a function built from ops */
    tg_op op;      /* TG_X_OP */
    int min_args, max_args;
    tg_xarg args[TG_XFUNC_MAX_ARGS];
    int32_t default_axis; /* an optional axis left out */
    char usage[80];       /* "sum(x[, axis])" */
} tg_xfunc;

/* The function named s[0..n) into *f; false when there is none. */
bool tg_expr__find_func(const char *s, size_t n, tg_xfunc *f);
/* The function name nearest to s[0..n) by edit distance when it is close enough to be a
 * likely typo, else NULL. */
const char *tg_expr__suggest(const char *s, size_t n);

/* ---- diagnostics (diag.c) ----------------------------------------------------------------- */

/* 1-based line and column of byte `off` of src. */
void tg_expr__locate(const char *src, size_t len, size_t off, int *line, int *col);

/* Fills err (status, message, span with its line and column) and sets this thread's error
 * to the formatted message with the source excerpt. Returns status. */
tg_status tg_expr__fail(tg_expr_error *err, tg_status status, const char *src, size_t len,
                        size_t start, size_t end, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
