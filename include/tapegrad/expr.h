/* tapegrad/expr.h: tgx, a small language for composite functions (docs/tgx.md). A program is
 * parsed once into a tg_program, then evaluated onto a tape any number of times with its
 * free names bound to tensors; the result is an ordinary tape tensor, ready for backward.
 *
 *     tg_program *prog;
 *     if (tg_program_parse("h = tanh(x @ W + b); mean(h^2)", &prog) != TG_OK)
 *         fprintf(stderr, "%s\n", tg_last_error());   // "error: 1:..." + line + caret
 *     tg_binding env[] = {{"x", x}, {"W", W}, {"b", b}};
 *     tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, 3, NULL);
 *
 * Errors carry their place in the source. tg_last_error() then holds the formatted message,
 * "error: L:C: reason" for a syntax error (where reading stopped) or "error: L:C1-C2: reason"
 * for an evaluation error (the expression at fault), followed by the source line and a caret
 * line underlining the span; a tg_expr_error gives the same in structured form. */
#ifndef TAPEGRAD_EXPR_H
#define TAPEGRAD_EXPR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A parsed program: immutable after parsing, so one may be evaluated on several tapes (one
 * thread per tape). It keeps a copy of its source, for error messages. */
typedef struct tg_program tg_program;

/* Deepest nesting of parentheses, calls, tensor literals and '^' chains that the parser
 * accepts; deeper input is a TG_EFORMAT error, never a stack overflow. (Chains of binary
 * operators and of unary minus are read by loops and may be as long as the input.) The
 * parser recurses at each level: 256 nested calls took between 192 and 256 KiB of stack in a
 * Release build (more with sanitizers), which a main thread (8 MiB on Linux) and glibc's
 * threads by default have; a thread made with a smaller stack (musl's default is 128 KiB)
 * needs 512 KiB to parse any program. */
#define TG_EXPR_MAX_DEPTH 256

/* Longest program accepted, in bytes (positions are stored in 32 bits). */
#define TG_EXPR_MAX_SOURCE ((size_t)1 << 30)

/* Names in error messages are clipped to their first this many bytes (the source line under
 * the message shows them whole), so that one absurd identifier cannot crowd out the rest. */
#define TG_EXPR_NAME_SHOWN 48

/* An error in structured form. line == 0 means it has no place in the source (out of
 * memory, a bad argument). Columns count bytes from 1; the span covers the bytes
 * [offset, end) of the source (end == offset + 1 for a single character, and end == offset
 * at the end of the input). */
typedef struct tg_expr_error {
    tg_status status;     /* TG_OK when there was no error */
    size_t offset, end;   /* byte span in the source */
    int line, col;        /* 1-based position of `offset` */
    int end_line, end_col; /* 1-based position of the span's last byte */
    char message[320];    /* the reason alone, e.g. "unknown function 'tanhh'" */
} tg_expr_error;

/* Parses a NUL-terminated program. On success *out is a new program, the caller's
 * (tg_program_free). Errors: TG_EFORMAT for any syntax error (tg_last_error() holds the
 * formatted message with the source line and a caret), TG_ENOMEM, TG_EINVAL for NULL
 * arguments. On error *out is NULL. */
TG_API tg_status tg_program_parse(const char *src, tg_program **out);
/* The same for `len` bytes (a NUL byte among them is a syntax error); err, if not NULL,
 * receives the error in structured form (its status is TG_OK on success). */
TG_API tg_status tg_program_parse_n(const char *src, size_t len, tg_expr_error *err,
                                    tg_program **out);
/* Frees a program. NULL is ignored. */
TG_API void tg_program_free(tg_program *prog);

/* The program's source text (NUL-terminated, its length in *len if len is not NULL); valid
 * as long as the program. */
TG_API const char *tg_program_source(const tg_program *prog, size_t *len);

/* The program's inputs: the names it reads before (or without) binding them, in order of
 * first use. Valid as long as the program; NULL when i is out of range. A name may be an
 * input and be rebound later ("x = x * 2; x"). */
TG_API size_t tg_program_input_count(const tg_program *prog);
TG_API const char *tg_program_input_name(const tg_program *prog, size_t i);
/* True when `name` is one of the language's function names (sum, relu, ...), which cannot
 * be bound. */
TG_API bool tg_expr_is_function(const char *name);
/* The language's functions, i = 0, 1, ...: every op of the op table that takes an input, by
 * its name (tg_op_name), then the functions built from ops (mse, ..., onehot). NULL past the
 * last. A static string. */
TG_API const char *tg_expr_function(size_t i);

/* A name bound to a tensor for evaluation. */
typedef struct tg_binding {
    const char *name;
    tg_tensor *value;
} tg_binding;

/* Evaluates the program onto `tape` in `dtype` and returns its output, a tensor owned by the
 * tape (or, for an output that is an input unchanged, "x", "y = x; y" or "x[:]", that input
 * itself). env[0..n) binds the inputs: leaves, or tensors already recorded on `tape`, of dtype
 * `dtype`; they stay the caller's. Bindings the program does not use are ignored; for a name
 * bound twice the first binding counts. Number literals become 0-d constants (tg_scalar) and
 * tensor literals constants (tg_constant) of `dtype`; every tensor an assignment binds is given
 * that name (tg_tensor_set_name), unless it is a leaf, an input or already has one.
 *
 * On error returns NULL: TG_EINVAL for a bad argument or an unbound input, TG_EDTYPE for an
 * input of the wrong dtype, the op's own status when an op fails (TG_ESHAPE, ...), TG_ENOMEM.
 * The message (tg_last_error(), and err if not NULL) is located in the source: for a failing
 * op it is the tape's error prefixed with the span of the expression that recorded it:
 *     error: 1:5-9: add: [2,3] and [4] do not broadcast: axis -1 has sizes 3 and 4 (node 0)
 * Nodes recorded before the error stay on the tape, which keeps the op's error (tape.h). */
TG_API tg_tensor *tg_program_eval(const tg_program *prog, tg_tape *tape, tg_dtype dtype,
                                  const tg_binding *env, size_t n, tg_expr_error *err);

/* Formats err like tg_last_error() does: "error: L:C: message", then, when the error has a
 * place, the source line (clipped to a window around the span when long) and a caret line,
 * each on its own line, with no final newline. src/len is the text err refers to. Writes at
 * most `size` bytes including the NUL (buf may be NULL when size is 0) and returns the
 * length of the whole message, as snprintf does. */
TG_API size_t tg_expr_error_format(const tg_expr_error *err, const char *src, size_t len,
                                   char *buf, size_t size);

/* Parses a value, the way programs write literals: a number ("2", "-0.5", "1e-3", also
 * "nan", "inf", "-inf") gives a 0-d tensor, a nested list ("[[1, 2], [3, 4]]") a tensor of
 * its shape, rank at most TG_MAX_RANK. Whitespace around tokens is allowed. *out is a new
 * leaf of `dtype`, the caller's (tg_tensor_free); it does not require grad. Errors:
 * TG_EFORMAT for malformed text, ragged lists or too many dimensions (the message, in
 * tg_last_error() and err, points at the column: "error: 1:6: expected ',' or ']' ..."),
 * TG_ENOMEM, TG_EINVAL for NULL arguments or a bad dtype. On error *out is NULL. */
TG_API tg_status tg_expr_parse_value(const char *text, tg_dtype dtype, tg_expr_error *err,
                                     tg_tensor **out);

#ifdef __cplusplus
}
#endif

#endif
