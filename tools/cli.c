/* cli.c: what every subcommand of the `tapegrad` command shares: messages and exit codes,
 * option matching, tgx programs and their NAME=VALUE inputs, and printing tensors for people
 * and as JSON. */
#define _DEFAULT_SOURCE /* realpath, lstat, fchmod */
#include "cli.h"
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct text_cells {
    char (*cell)[32];
    int width;
} text_cells;

/* "tapegrad grad: message" on stderr. */
void complain(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tapegrad%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A usage error: the message, a pointer to --help, and exit status 2. */
bool parse_size(const char *s, unsigned long long max, unsigned long long *out)
{
    if (*s < '0' || *s > '9') /* strtoull would take a sign and skip blanks */
        return false;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return *end == '\0' && errno == 0 && *out <= max;
}

bool parse_dtype(const char *s, tg_dtype *out)
{
    if (strcmp(s, "f32") == 0)
        *out = TG_F32;
    else if (strcmp(s, "f64") == 0)
        *out = TG_F64;
    else
        return false;
    return true;
}

const char *data_path(const char *arg)
{
    return strcmp(arg, "-") == 0 ? "/dev/stdin" : arg;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tapegrad%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'tapegrad%s%s --help' for more information.\n", cmd ? " " : "",
            cmd ? cmd : "");
    va_end(ap);
    return EXIT_USAGE;
}

/* Whether v printed with `prec` significant digits into buf reads back as v in `dtype`. */
static bool reads_back(char *buf, size_t size, int prec, double v, tg_dtype dtype)
{
    snprintf(buf, size, "%.*g", prec, v);
    const double back = strtod(buf, NULL);
    return dtype == TG_F32 ? (float)back == (float)v : back == v;
}

/* The shortest decimal that reads back as the same value of `dtype` ("0.1", not
 * "0.10000000000000001"), for people; JSON gets all 17 digits. Reading back is monotone in
 * the digits up to `mono`: more digits are nearer v, and a nearer decimal can fail only where
 * the gap below v is half the one above (v a power of two) and the decimal grid is about as
 * fine as that gap, which for f64 takes 16 digits (2^149 reads back from 14 digits and 15,
 * not from 16); for f32 it happens at no power of two (all 277 tried). So the shortest is
 * bisected up to mono and counted beyond it: a computed f64 takes two or three tries, not 17. */
void format_short(char *buf, size_t size, double v, tg_dtype dtype)
{
    if (isnan(v)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
        return;
    }
    const int max = dtype == TG_F32 ? 9 : 17, mono = dtype == TG_F32 ? 9 : 15;
    int prec = max; /* always reads back */
    if (reads_back(buf, size, mono, v, dtype)) {
        int lo = 1;
        prec = mono;
        while (lo < prec) { /* prec reads back, fewer than lo digits do not */
            const int mid = (lo + prec) / 2;
            if (reads_back(buf, size, mid, v, dtype))
                prec = mid;
            else
                lo = mid + 1;
        }
    } else {
        for (int p = mono + 1; p < max; p++)
            if (reads_back(buf, size, p, v, dtype)) {
                prec = p;
                break;
            }
    }
    /* %g switches to an exponent once the integer part has more digits than the precision
     * ("-2e+01"); more digits (still exact) read better up to 1e16. */
    snprintf(buf, size, "%.*g", prec, v);
    while (strchr(buf, 'e') && fabs(v) >= 1 && fabs(v) < 1e16 && prec < 17)
        snprintf(buf, size, "%.*g", ++prec, v);
}

/* A JSON number with 17 significant digits, which reads back as the same double. JSON has
 * no NaN or infinities: they are written as the strings "NaN", "Infinity", "-Infinity". */
void json_number(FILE *f, double v)
{
    if (isnan(v))
        fputs("\"NaN\"", f);
    else if (isinf(v))
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
    else
        fprintf(f, "%.17g", v);
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}


/* The values (grad false) or the gradient (grad true, zeros where none was computed). */
bool dense_from(const tg_tensor *t, bool grad, dense *d)
{
    d->rank = tg_tensor_rank(t);
    d->shape = tg_tensor_shape(t);
    d->numel = tg_tensor_numel(t);
    d->dtype = tg_tensor_dtype(t);
    d->v = malloc((d->numel ? d->numel : 1) * sizeof *d->v);
    if (!d->v)
        return false;
    if (grad) {
        for (size_t i = 0; i < d->numel; i++)
            d->v[i] = tg_tensor_grad_get(t, i);
    } else if (tg_tensor_to_f64(t, d->v) != TG_OK) {
        free(d->v);
        d->v = NULL;
        return false;
    }
    return true;
}

static void json_level(FILE *f, const dense *d, int level, size_t *k)
{
    fputc('[', f);
    for (size_t i = 0; i < d->shape[level]; i++) {
        if (i)
            fputs(", ", f);
        if (level + 1 == d->rank)
            json_number(f, d->v[(*k)++]);
        else
            json_level(f, d, level + 1, k);
    }
    fputc(']', f);
    /* An empty axis hides the elements below it: skip nothing (there are none). */
}

/* A number for a 0-d tensor, else nested lists; a tensor without elements is [] (the
 * value's shape is printed beside it, a gradient has its input's), so that printing is
 * bounded by the elements, not by an outer dimension: [100000000, 0] would otherwise be a
 * hundred million empty lists. */
void json_dense(FILE *f, const dense *d)
{
    size_t k = 0;
    if (d->rank == 0)
        json_number(f, d->v[0]);
    else if (d->numel == 0)
        fputs("[]", f);
    else
        json_level(f, d, 0, &k);
}

void json_shape(FILE *f, int rank, const size_t *shape)
{
    fputc('[', f);
    for (int i = 0; i < rank; i++)
        fprintf(f, "%s%zu", i ? ", " : "", shape[i]);
    fputc(']', f);
}


static void human_level(FILE *f, const dense *d, const text_cells *c, int level, size_t *k,
                        int indent)
{
    fputc('[', f);
    for (size_t i = 0; i < d->shape[level]; i++) {
        if (level + 1 == d->rank) {
            fprintf(f, "%s%*s", i ? ", " : "", c->width, c->cell[*k]);
            (*k)++;
            continue;
        }
        if (i) {
            fputc(',', f);
            for (int nl = 0; nl < d->rank - level - 1; nl++)
                fputc('\n', f);
            fprintf(f, "%*s", indent + level + 1, "");
        }
        human_level(f, d, c, level + 1, k, indent);
    }
    fputc(']', f);
}

/* "[2,3]": tg_shape_format's form, for any rank: a Jacobian or Hessian block has up to
 * 2 TG_MAX_RANK axes, more than a tensor's. */
static void shape_text(char *buf, size_t size, int rank, const size_t *shape)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%zu" : "%zu", shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

/* "label = 3" for a 0-d tensor, "label [3] = [1, 2, 3]" for a vector, and for more
 * dimensions the shape, then the elements NumPy-style on the following lines, aligned. */
void print_dense(FILE *f, const char *label, const dense *d)
{
    char shape[2 * TG_MAX_RANK * 21 + 2];
    if (d->rank == 0) {
        char num[32];
        format_short(num, sizeof num, d->v[0], d->dtype);
        fprintf(f, "%s = %s\n", label, num);
        return;
    }
    text_cells c = {malloc((d->numel ? d->numel : 1) * sizeof *c.cell), 1};
    if (!c.cell) {
        fprintf(f, "%s: (out of memory)\n", label);
        return;
    }
    for (size_t i = 0; i < d->numel; i++) {
        format_short(c.cell[i], sizeof c.cell[i], d->v[i], d->dtype);
        int w = (int)strlen(c.cell[i]);
        if (w > c.width)
            c.width = w;
    }
    shape_text(shape, sizeof shape, d->rank, d->shape);
    size_t k = 0;
    if (d->numel == 0) { /* bounded by the elements, as json_dense */
        fprintf(f, "%s %s = []", label, shape);
    } else if (d->rank == 1) {
        fprintf(f, "%s %s = ", label, shape);
        human_level(f, d, &c, 0, &k, 0);
    } else {
        fprintf(f, "%s %s =\n  ", label, shape);
        human_level(f, d, &c, 0, &k, 2);
    }
    fputc('\n', f);
    free(c.cell);
}

/* True for a tgx name: [A-Za-z_][A-Za-z0-9_]*. */
bool is_identifier(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* An argument that looks like an option ("-x", "--name", "--name=value"), as opposed to a
 * program that happens to start with a minus sign ("-x^2"). */
bool looks_like_option(const char *a)
{
    if (a[0] != '-')
        return false;
    const char *s = a + 1 + (a[1] == '-');
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (; *s && *s != '='; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Matches `arg` against option `name`: "--seed" (value in the next argument) or
 * "--seed=VALUE". *value is NULL when the option takes the next argument. */
bool match_option(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return false;
    if (arg[n] == '\0') {
        *value = NULL;
        return true;
    }
    if (arg[n] == '=' && name[1] == '-') {
        *value = arg + n + 1;
        return true;
    }
    return false;
}

bool take_positional(const char *a, bool *only_positional, const char **positional, size_t *n)
{
    if (!*only_positional && looks_like_option(a))
        return false;
    if (!*only_positional && strcmp(a, "--") == 0)
        *only_positional = true;
    else
        positional[(*n)++] = a;
    return true;
}

int take_valued_option(const char *cmd, int argc, char **argv, int *i, const char *const *names,
                       size_t n_names, bool hint_program, const char **name, const char **value)
{
    const char *a = argv[*i];
    *name = NULL;
    for (size_t k = 0; k < n_names && !*name; k++)
        if (match_option(a, names[k], value))
            *name = names[k];
    if (!*name)
        return usage_error(cmd, "unknown option '%s'%s", a,
                           hint_program ? " (a program that starts with '-' goes after '--')" : "");
    if (!*value) {
        if (*i + 1 >= argc)
            return usage_error(cmd, "option '%s' needs a value", *name);
        *value = argv[++*i];
    }
    return EXIT_OK;
}

/* ---- tgx programs and their inputs ------------------------------------------------------------ */

int split_binding(const char *cmd, const char *arg, char **name, const char **text)
{
    *name = NULL;
    const char *eq = strchr(arg, '=');
    if (!eq)
        return usage_error(cmd, "expected NAME=VALUE, got '%s'", arg);
    size_t n = (size_t)(eq - arg);
    if (!is_identifier(arg, n))
        return usage_error(cmd, "'%.*s' in '%s' is not a name (letters, digits, '_')", (int)n,
                           arg, arg);
    char *copy = malloc(n + 1);
    if (!copy) {
        complain(cmd, "out of memory");
        return EXIT_FAIL;
    }
    memcpy(copy, arg, n);
    copy[n] = '\0';
    if (tg_expr_is_function(copy)) {
        free(copy);
        return usage_error(cmd, "'%.*s' is a function name and cannot be an input", (int)n, arg);
    }
    *name = copy;
    *text = eq + 1;
    return EXIT_OK;
}

int parse_value_arg(const char *cmd, const char *what, const char *text, tg_dtype dtype,
                    tg_tensor **out)
{
    tg_expr_error err;
    tg_status st = tg_expr_parse_value(text, dtype, &err, out);
    if (st == TG_OK)
        return EXIT_OK;
    if (st == TG_EFORMAT)
        return usage_error(cmd, "bad value for %s: column %d: %s", what, err.col, err.message);
    complain(cmd, "%s", tg_last_error());
    return EXIT_FAIL;
}

void report_program_error(const tg_expr_error *err, const char *src, size_t len,
                          const char *missing, const char *binding_is_to)
{
    size_t n = tg_expr_error_format(err, src, len, NULL, 0);
    char *buf = malloc(n + 1);
    if (buf) {
        tg_expr_error_format(err, src, len, buf, n + 1);
        fprintf(stderr, "%s\n", buf);
        free(buf);
    } else {
        fprintf(stderr, "error: %s\n", err->message);
    }
    if (missing) { /* the name clipped as the error's own message clips it */
        const size_t name_len = strlen(missing);
        const int shown = name_len > TG_EXPR_NAME_SHOWN ? TG_EXPR_NAME_SHOWN : (int)name_len;
        const char *more = name_len > TG_EXPR_NAME_SHOWN ? "..." : "";
        fprintf(stderr,
                "hint: give it a value: %.*s%s=VALUE to %s, --const %.*s%s=VALUE for a "
                "constant\n",
                shown, missing, more, binding_is_to, shown, missing, more);
    }
}

int load_program(const char *cmd, const char *file, const char *inline_src, char **text,
                 const char **src, size_t *len, tg_program **prog)
{
    *text = NULL;
    *prog = NULL;
    if (file) {
        *text = read_file_max(file, len, MAX_PROGRAM_BYTES);
        if (!*text) {
            complain(cmd, "cannot read '%s': %s", file,
                     errno == EFBIG ? "more than 16 MiB, the limit for a program"
                                    : strerror(errno));
            return EXIT_FAIL;
        }
        *src = *text; /* its length is what was read: a NUL inside is the parser's error */
        if (*len >= 3 && memcmp(*src, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark, */
            *src += 3; /* as some editors write one: skipped, as tg_table_read_csv skips it */
            *len -= 3;
        }
    } else {
        *src = inline_src;
        *len = strlen(inline_src);
    }
    tg_expr_error err;
    if (tg_program_parse_n(*src, *len, &err, prog) != TG_OK) {
        report_program_error(&err, *src, *len, NULL, NULL);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

const char *check_bindings(const char *cmd, const tg_program *prog, const tg_binding *env,
                           size_t n)
{
    const char *missing = NULL;
    size_t count = tg_program_input_count(prog);
    for (size_t i = 0; i < count && !missing; i++) {
        const char *name = tg_program_input_name(prog, i);
        bool bound = false;
        for (size_t j = 0; j < n && !bound; j++)
            bound = strcmp(env[j].name, name) == 0;
        if (!bound)
            missing = name;
    }
    for (size_t j = 0; j < n; j++) {
        bool used = false;
        for (size_t i = 0; i < count && !used; i++)
            used = strcmp(env[j].name, tg_program_input_name(prog, i)) == 0;
        if (!used)
            complain(cmd, "warning: the program does not use '%s'", env[j].name);
    }
    return missing;
}

/* ---- output files ------------------------------------------------------------------------ */

/* The message, then the temporary file removed (when `created`) and o released: false. */
static bool out_fail(out_file *o, bool created, const char *reason)
{
    complain(o->cmd, "%s: cannot write '%s': %s", o->what, o->path, reason);
    if (o->f)
        fclose(o->f);
    if (created)
        unlink(o->tmp);
    free(o->tmp);
    free(o->target);
    *o = (out_file){NULL, o->cmd, o->what, o->path, NULL, NULL};
    return false;
}

bool out_open(const char *cmd, const char *what, const char *path, out_file *o)
{
    *o = (out_file){NULL, cmd, what, path, NULL, NULL};
    struct stat sb;
    bool exists = lstat(path, &sb) == 0;
    if (exists && S_ISLNK(sb.st_mode)) {
        /* Followed, so that the link survives and leads to the new file; what it leads to is
         * judged below (/dev/stdout's pipe or terminal has no path to resolve). */
        if (stat(path, &sb) != 0 || (S_ISREG(sb.st_mode) && !(o->target = realpath(path, NULL))))
            return out_fail(o, false, strerror(errno));
    }
    /* A rename would replace a FIFO or a device itself, and opening a FIFO blocks. */
    if (exists && !S_ISREG(sb.st_mode))
        return out_fail(o, false,
                        S_ISDIR(sb.st_mode)
                            ? "a directory: refusing to replace it"
                            : "not a regular file (a FIFO or a device): refusing to replace it");
    const char *target = o->target ? o->target : path;
    const size_t len = strlen(target) + 12;
    if (!(o->tmp = malloc(len)))
        return out_fail(o, false, strerror(ENOMEM));
    /* A new file (O_EXCL: never one planted there), with the old file's mode when there is
     * one, else what creating path would give (0666 less the umask): "PATH.tmp-XXXXXX", or
     * "DIR/.tmp-XXXXXX" when the name is too long for that, as the library names its own
     * (src/io/files.c), so that a name the library writes is one this writes too. */
    const char *slash = strrchr(target, '/');
    size_t at = len - 12; /* where ".tmp-XXXXXX" goes */
    int fd = -1;
    for (unsigned k = 0; k < 100 && fd < 0; k++) {
        memcpy(o->tmp, target, at);
        snprintf(o->tmp + at, 12, ".tmp-%06x",
                 ((unsigned)getpid() * 2654435761u + k * 40503u) & 0xffffffu);
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno == ENAMETOOLONG && at == len - 12)
            at = slash ? (size_t)(slash - target) + 1 : 0; /* in place of the name */
        else if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return out_fail(o, false, strerror(errno));
    if ((exists && fchmod(fd, sb.st_mode & 07777) != 0) || !(o->f = fdopen(fd, "w"))) {
        int err = errno;
        close(fd);
        return out_fail(o, true, strerror(err));
    }
    return true;
}

bool out_close(out_file *o, bool ok)
{
    if (ok && (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0))
        return out_fail(o, true, strerror(errno));
    int rc = fclose(o->f);
    o->f = NULL;
    if (ok && (rc != 0 || rename(o->tmp, o->target ? o->target : o->path) != 0))
        return out_fail(o, true, strerror(errno));
    if (!ok)
        unlink(o->tmp);
    free(o->tmp);
    free(o->target);
    o->tmp = o->target = NULL;
    return true;
}

bool out_probe(const char *cmd, const char *what, const char *path)
{
    out_file o;
    if (!path || strcmp(path, "-") == 0)
        return true;
    if (!out_open(cmd, what, path, &o))
        return false;
    return out_close(&o, false);
}

bool has_extension(const char *path, const char *ext)
{
    const char *dot = strrchr(path, '.');
    return dot && strcmp(dot, ext) == 0;
}

int check_render_path(const char *cmd, const char *path)
{
    if (path && !has_extension(path, ".svg") && !has_extension(path, ".png") &&
        !has_extension(path, ".pdf"))
        return usage_error(cmd,
                           "--render: cannot tell the format of '%s' (use a name ending "
                           "in .svg, .png or .pdf)",
                           path);
    return EXIT_OK;
}

/* Whether the directory part of path (up to its last '/'; "." when it has none) and another's
 * are one directory. */
static bool same_directory(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    char da[4096], db[4096];
    if ((sa && sa - a >= (ptrdiff_t)sizeof da - 1) || (sb && sb - b >= (ptrdiff_t)sizeof db - 1))
        return false; /* longer than a path can be: writing it will say so */
    snprintf(da, sizeof da, "%.*s", sa ? (int)(sa - a) + 1 : 1, sa ? a : ".");
    snprintf(db, sizeof db, "%.*s", sb ? (int)(sb - b) + 1 : 1, sb ? b : ".");
    struct stat st_a, st_b;
    if (stat(da, &st_a) != 0 || stat(db, &st_b) != 0)
        return strcmp(da, db) == 0;
    return st_a.st_dev == st_b.st_dev && st_a.st_ino == st_b.st_ino;
}

/* Whether paths a and b are one file (check_outputs). */
static bool same_file(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    struct stat st_a, st_b;
    const bool has_a = stat(a, &st_a) == 0, has_b = stat(b, &st_b) == 0;
    if (has_a || has_b)
        return has_a && has_b && st_a.st_dev == st_b.st_dev && st_a.st_ino == st_b.st_ino;
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    return strcmp(na ? na + 1 : a, nb ? nb + 1 : b) == 0 && same_directory(a, b);
}

int check_outputs(const char *cmd, const named_path *out, size_t n, const named_path *in)
{
    for (size_t i = 0; i < n; i++) {
        if (!out[i].path || strcmp(out[i].path, "-") == 0)
            continue;
        if (in && in->path && strcmp(in->path, "-") != 0 && same_file(out[i].path, in->path))
            return usage_error(cmd, "%s '%s' would write over the %s it reads ('%s')",
                               out[i].option, out[i].path, in->option, in->path);
        for (size_t j = i + 1; j < n; j++)
            if (out[j].path && strcmp(out[j].path, "-") != 0 && same_file(out[i].path, out[j].path))
                return usage_error(cmd, "%s '%s' and %s '%s' are one file: give each its own",
                                   out[i].option, out[i].path, out[j].option, out[j].path);
    }
    return EXIT_OK;
}
