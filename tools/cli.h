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
int cmd_minimize(int argc, char **argv);

/* ---- messages ---------------------------------------------------------------------------- */

/* "tapegrad CMD: message" on stderr (cmd may be NULL). */
void complain(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error: the message, a pointer to --help, and EXIT_USAGE (to return). */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options ----------------------------------------------------------------------------- */

/* A count argument: decimal digits only (no sign, no blanks), at most max; false otherwise. */
bool parse_size(const char *s, unsigned long long max, unsigned long long *out);
/* A --dtype value, "f32" or "f64"; false for anything else. */
bool parse_dtype(const char *s, tg_dtype *out);
/* The file to read a DATA.csv argument from: "-" is standard input (/dev/stdin). */
const char *data_path(const char *arg);

/* True for a tgx name: [A-Za-z_][A-Za-z0-9_]*. */
bool is_identifier(const char *s, size_t n);
/* An argument that looks like an option ("-x", "--name", "--name=value"), as opposed to a
 * program that happens to start with a minus sign ("-x^2"). */
bool looks_like_option(const char *a);
/* Matches `arg` against option `name`: "--seed" (value in the next argument; *value = NULL)
 * or "--seed=VALUE" (*value points into arg). */
bool match_option(const char *arg, const char *name, const char **value);
/* The argument loop grad and minimize share, one argv[*i] at a time:
 *   take_positional: a positional argument (anything not looking like an option, and all
 *     after a first "--", which is dropped) is appended to positional[(*n)++]: true; an
 *     option: false.
 *   take_valued_option: the option argv[*i] among names[0..n_names) with its value, from
 *     "--name=VALUE" or the next argument (*i advanced): *name and *value set, EXIT_OK; else
 *     a usage error for an unknown option (with the hint that a program starting with '-'
 *     goes after "--" when `hint_program`) or one without its value. */
bool take_positional(const char *a, bool *only_positional, const char **positional, size_t *n);
int take_valued_option(const char *cmd, int argc, char **argv, int *i, const char *const *names,
                       size_t n_names, bool hint_program, const char **name, const char **value);

/* ---- tgx programs and their inputs on the command line (grad, minimize) ------------------- */

/* A program file larger than this is refused rather than read (a stream such as /dev/zero
 * never ends); real programs are a few lines. */
#define MAX_PROGRAM_BYTES ((size_t)16 << 20)

/* Splits an input argument NAME=VALUE: *name a malloc'd copy of NAME (the caller frees it),
 * *text VALUE (inside arg). A missing '=', a NAME that is not an identifier or that is a
 * function's name is a usage error (EXIT_USAGE, *name NULL); EXIT_FAIL when memory runs out. */
int split_binding(const char *cmd, const char *arg, char **name, const char **text);
/* Parses a VALUE argument (tg_expr_parse_value) for `what` (an input's name, an option); a
 * malformed one is a usage error. *out is the caller's. */
int parse_value_arg(const char *cmd, const char *what, const char *text, tg_dtype dtype,
                    tg_tensor **out);
/* The program: from `file` ("-" is stdin, at most MAX_PROGRAM_BYTES; *text the malloc'd
 * contents, the caller frees it) when file is not NULL, else the text `inline_src`; parsed
 * into *prog (the caller frees it). *src and *len are the source the errors refer to. An
 * unreadable file or a syntax error (reported with its excerpt) gives EXIT_FAIL. */
int load_program(const char *cmd, const char *file, const char *inline_src, char **text,
                 const char **src, size_t *len, tg_program **prog);
/* Compares the program's inputs with the bindings env[0..n): warns on stderr about a
 * binding the program never reads (a typo is likely) and returns the first input nobody
 * bound (for the hint after the evaluation's error), or NULL. */
const char *check_bindings(const char *cmd, const tg_program *prog, const tg_binding *env,
                           size_t n);
/* A program error with its source excerpt on stderr; when `missing` (check_bindings') is not
 * NULL, a hint on how to bind it, saying what a binding is for ("differentiate with respect
 * to it"). */
void report_program_error(const tg_expr_error *err, const char *src, size_t len,
                          const char *missing, const char *binding_is_to);

/* ---- output files ------------------------------------------------------------------------ */

/* A file a subcommand writes (--dot, --plot), written as the library saves its files
 * (tapegrad/nn.h): into a new temporary file beside the path ("PATH.tmp-XXXXXX"), which
 * out_close renames over it, so a failed write (a full disk) leaves what was there untouched.
 * A path that exists and is not a regular file (a directory, a FIFO: opening one would block)
 * is refused; a symbolic link is followed. */
typedef struct out_file {
    FILE *f;         /* where to write */
    const char *cmd; /* for the messages: "tapegrad CMD: WHAT: cannot write 'PATH': ..." */
    const char *what;
    const char *path;
    char *target; /* path, or the file its symbolic link leads to (malloc'd) */
    char *tmp;    /* the temporary file's name (malloc'd) */
} out_file;
/* Opens o->f; false after a message naming the path and the OS reason. */
bool out_open(const char *cmd, const char *what, const char *path, out_file *o);
/* Ends what out_open began: with ok, flushes, syncs and closes the temporary file and renames
 * it over the path (false after a message when one of those fails); without, removes it. */
bool out_close(out_file *o, bool ok);
/* Whether the file `path` (NULL or "-": nothing to check) can be written as out_open writes
 * it, checked before long work rather than after it: out_open, then out_close without
 * keeping the file, so that nothing is left behind and the path is not touched. False after
 * out_open's message. */
bool out_probe(const char *cmd, const char *what, const char *path);
/* Whether path's name ends in ext (".svg"): its last '.' starts exactly ext. */
bool has_extension(const char *path, const char *ext);
/* --render FILE must say its format: EXIT_OK for a NULL path or one ending in .svg, .png or
 * .pdf, else a usage error of cmd naming the path. */
int check_render_path(const char *cmd, const char *path);
/* A file a command reads or writes, and the option (or argument) that names it. */
typedef struct named_path {
    const char *option; /* "--save", "DATA.csv" */
    const char *path;   /* NULL: not given; "-": a standard stream, never compared */
} named_path;
/* The n files a command writes must be n files, none of them the one it reads (in, or NULL): a
 * usage error of cmd naming both options otherwise. Two paths are one file when they are the
 * same text, lead to the same file (through links), or name files not made yet by the same
 * name in the same directory. */
int check_outputs(const char *cmd, const named_path *out, size_t n, const named_path *in);

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
