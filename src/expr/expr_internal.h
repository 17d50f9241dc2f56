/* expr_internal.h: what the tgx parser (parse.c), evaluator (eval.c) and diagnostics
 * (diag.c) share. A program is kept as a flat array of nodes in evaluation order (operands
 * always come before their users), so evaluating and freeing it never recurse. */
#ifndef TAPEGRAD_EXPR_INTERNAL_H
#define TAPEGRAD_EXPR_INTERNAL_H

#include "core/core.h"

/* "No node / no symbol": the parser's failure value for node indices. */
#define TG_EXPR_NONE UINT32_MAX

/* Node kinds: literals, inputs, operators and one per function of the language. */
typedef enum tg_xop {
    TG_X_NUM,    /* number literal: c */
    TG_X_LIST,   /* tensor literal: lits[lit] */
    TG_X_INPUT,  /* a free name: inputs[lit] */
    TG_X_NEG,
    TG_X_ADD,
    TG_X_SUB,
    TG_X_MUL,
    TG_X_DIV,
    TG_X_MATMUL,
    TG_X_POW,    /* a ^ c */
    TG_X_SIGMOID,
    TG_X_RELU,
    TG_X_TANH,
    TG_X_SQUARE,
    TG_X_SQRT,
    TG_X_EXP,
    TG_X_LOG,
    TG_X_ABS,
    TG_X_SUM,    /* reductions: axis (TG_ALL_AXES by default) */
    TG_X_MEAN,
    TG_X_MAX,
    TG_X_LOGSUMEXP,
    TG_X_SOFTMAX, /* axis (-1 by default) */
    TG_X_LOG_SOFTMAX,
    TG_X_TRANSPOSE,
    TG_X_RESHAPE, /* shape: lits[lit], a 1-D list that may hold one -1 */
    TG_X_DETACH,
    TG_X_MSE,
    TG_X_BCE,
    TG_X_BCE_LOGITS,
    TG_X_CROSS_ENTROPY,
    TG_X_ONEHOT, /* n classes: c */
    TG_X_COUNT
} tg_xop;

typedef struct tg_xnode {
    uint8_t op;          /* tg_xop */
    int32_t axis;        /* reductions, softmax */
    uint32_t a, b;       /* operand node indices (TG_EXPR_NONE when unused) */
    uint32_t lit;        /* TG_X_LIST, TG_X_RESHAPE: literal index; TG_X_INPUT: input index */
    uint32_t name;       /* offset+1 into names of the name an assignment gave it; 0: none */
    uint32_t start, end; /* source span [start, end) */
    double c;            /* TG_X_NUM value, TG_X_POW exponent, TG_X_ONEHOT class count */
} tg_xnode;

/* A tensor literal (or a reshape's shape list): values[offset .. offset+numel). */
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
    char *names; /* NUL-terminated names, back to back; referenced by offset */
    size_t n_names, cap_names;
    uint32_t *inputs; /* per input: offset of its name in `names` */
    uint32_t *input_node; /* per input: its TG_X_INPUT node (its first use) */
    size_t n_inputs, cap_inputs, cap_input_node;
    uint32_t output; /* the node of the last statement */
};

/* 1-based line and column of byte `off` of src. */
void tg_expr__locate(const char *src, size_t len, size_t off, int *line, int *col);

/* Fills err (status, message, span with its line and column) and sets this thread's error
 * to the formatted message with the source excerpt. Returns status. */
tg_status tg_expr__fail(tg_expr_error *err, tg_status status, const char *src, size_t len,
                        size_t start, size_t end, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
