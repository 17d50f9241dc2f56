/* cli.h: what the subcommands of the `tapegrad` command share (cli.c): messages and exit
 * codes, option matching, and printing tensors for people and as JSON; and the subcommands
 * themselves, one per cmd_NAME.c, listed in tapegrad.c's table. What the tools share with
 * the tests (reading files and JSON, running programs, the clock) is in common/.
 *
 * Exit status, for every subcommand: 0 success, 1 the work failed (a program error, an
 * unreadable file, a failed check), 2 the command line is malformed. */
#ifndef TAPEGRAD_TOOLS_CLI_H
#define TAPEGRAD_TOOLS_CLI_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---- the subcommands: argv[0] is the subcommand's name; each returns an exit status ---- */
int cmd_grad(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* ---- messages ---------------------------------------------------------------------------- */

/* "tapegrad CMD: message" on stderr (cmd may be NULL). */
void complain(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error: the message, a pointer to --help, and EXIT_USAGE (to return). */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options ----------------------------------------------------------------------------- */

/* True for a tgx name: [A-Za-z_][A-Za-z0-9_]*. */
bool is_identifier(const char *s, size_t n);
/* An argument that looks like an option ("-x", "--name", "--name=value"), as opposed to a
 * program that happens to start with a minus sign ("-x^2"). */
bool looks_like_option(const char *a);
/* Matches `arg` against option `name`: "--seed" (value in the next argument; *value = NULL)
 * or "--seed=VALUE" (*value points into arg). */
bool match_option(const char *arg, const char *name, const char **value);

/* ---- numbers and tensors, for people and as JSON ----------------------------------------- */

/* The shortest decimal that reads back as the same value of `dtype`. */
void format_short(char *buf, size_t size, double v, tg_dtype dtype);
/* A JSON number with 17 significant digits; NaN and infinities as strings. */
void json_number(FILE *f, double v);
/* A JSON string, escaped. */
void json_string(FILE *f, const char *s);

/* A dense array of doubles with a shape: what the printers take, whether it came from a
 * tensor's values or its gradient. */
typedef struct dense {
    int rank;
    const size_t *shape;
    double *v; /* malloc'd, numel elements */
    size_t numel;
    tg_dtype dtype;
} dense;

/* The values (grad false) or the gradient (grad true, zeros where none was computed) of t;
 * false when memory runs out. The caller frees d->v. */
bool dense_from(const tg_tensor *t, bool grad, dense *d);
/* A number for a 0-d tensor, else nested lists. */
void json_dense(FILE *f, const dense *d);
/* [2, 3] */
void json_shape(FILE *f, int rank, const size_t *shape);
/* "label = 3", "label [3] = [1, 2, 3]", or the shape and NumPy-style rows. */
void print_dense(FILE *f, const char *label, const dense *d);

#endif
