/* test_cli.c: the `tapegrad` command, run as a subprocess from the build's tools directory
 * (TG_TOOLS_DIR): `grad`'s human and JSON output (parsed by a small JSON reader here), exit
 * statuses 0/1/2 with their stderr messages, --const, --seed, --check, --dtype, -f FILE and
 * -f - (stdin), --dot/--render, and the top-level --help/--version. */
#include <criterion/criterion.h>
#include <tapegrad.h>
#include <tapegrad/io.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- running the command --------------------------------------------------------------------- */

typedef struct cli {
    int status; /* exit status; -1 when killed by a signal */
    char *out, *err;
} cli;

static char *slurp(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Appends s to the command, single-quoted for the shell. */
static void quote(char *cmd, size_t size, const char *s)
{
    size_t n = strlen(cmd);
    cr_assert_lt(n + strlen(s) * 4 + 4, size, "command too long");
    cmd[n++] = ' ';
    cmd[n++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(cmd + n, "'\\''", 4);
            n += 4;
        } else {
            cmd[n++] = *s;
        }
    }
    cmd[n++] = '\'';
    cmd[n] = '\0';
}

/* Runs `tapegrad args...` (args ends with NULL), feeding stdin_text (or nothing). */
static cli run_in(const char *stdin_text, const char *const *args)
{
    const char *dir = getenv("TG_TOOLS_DIR");
    cr_assert_not_null(dir, "TG_TOOLS_DIR is not set (run through ctest)");
    char errpath[] = "/tmp/tg_cli_err_XXXXXX", inpath[] = "/tmp/tg_cli_in_XXXXXX";
    int efd = mkstemp(errpath), ifd = mkstemp(inpath);
    cr_assert(efd >= 0 && ifd >= 0);
    if (stdin_text)
        cr_assert_eq(write(ifd, stdin_text, strlen(stdin_text)), (ssize_t)strlen(stdin_text));
    close(efd);
    close(ifd);
    static char cmd[1 << 16];
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/tapegrad", dir);
    cmd[0] = '\0';
    quote(cmd, sizeof cmd, exe);
    for (size_t i = 0; args[i]; i++)
        quote(cmd, sizeof cmd, args[i]);
    size_t n = strlen(cmd);
    snprintf(cmd + n, sizeof cmd - n, " 2>%s <%s", errpath, inpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cli r;
    r.out = slurp(p);
    int ws = pclose(p);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    FILE *e = fopen(errpath, "r");
    cr_assert_not_null(e);
    r.err = slurp(e);
    fclose(e);
    unlink(errpath);
    unlink(inpath);
    /* Under the sanitizers the command's own reports land in its stderr: surface them. */
    cr_assert(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error:"),
              "the command tripped a sanitizer:\n%s", r.err);
    return r;
}

#define RUN(...) run_in(NULL, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_STDIN(text, ...) run_in(text, (const char *const[]){__VA_ARGS__, NULL})

static void cli_free(cli *r)
{
    free(r->out);
    free(r->err);
}

static void expect_status(const cli *r, int status)
{
    cr_assert_eq(r->status, status, "exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r->status,
                 status, r->out, r->err);
}

static void expect_has(const char *text, const char *needle, const char *what)
{
    cr_assert(strstr(text, needle), "%s lacks \"%s\":\n%s", what, needle, text);
}

/* ---- a minimal JSON reader ------------------------------------------------------------------- */

typedef enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jv {
    jtype type;
    double num; /* J_NUM, J_BOOL */
    char *str;  /* J_STR */
    struct jv *items; /* J_ARR, J_OBJ (values) */
    char **keys;      /* J_OBJ */
    size_t n;
} jv;

static void jskip(const char **s)
{
    while (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r')
        (*s)++;
}

static bool jparse(const char **s, jv *v);

static bool jstring(const char **s, char **out)
{
    if (**s != '"')
        return false;
    (*s)++;
    const char *start = *s;
    while (**s && **s != '"') {
        if (**s == '\\' && (*s)[1])
            (*s)++;
        (*s)++;
    }
    if (**s != '"')
        return false;
    size_t n = (size_t)(*s - start);
    *out = malloc(n + 1);
    memcpy(*out, start, n);
    (*out)[n] = '\0';
    (*s)++;
    return true;
}

static bool jparse(const char **s, jv *v)
{
    memset(v, 0, sizeof *v);
    jskip(s);
    if (**s == '{' || **s == '[') {
        bool obj = **s == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJ : J_ARR;
        (*s)++;
        jskip(s);
        if (**s == close) {
            (*s)++;
            return true;
        }
        for (;;) {
            v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
            v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
            v->keys[v->n] = NULL;
            if (obj) {
                jskip(s);
                if (!jstring(s, &v->keys[v->n]))
                    return false;
                jskip(s);
                if (*(*s)++ != ':')
                    return false;
            }
            if (!jparse(s, &v->items[v->n]))
                return false;
            v->n++;
            jskip(s);
            if (**s == ',') {
                (*s)++;
                continue;
            }
            if (**s == close) {
                (*s)++;
                return true;
            }
            return false;
        }
    }
    if (**s == '"') {
        v->type = J_STR;
        return jstring(s, &v->str);
    }
    if (strncmp(*s, "true", 4) == 0 || strncmp(*s, "false", 5) == 0) {
        v->type = J_BOOL;
        v->num = **s == 't';
        *s += **s == 't' ? 4 : 5;
        return true;
    }
    if (strncmp(*s, "null", 4) == 0) {
        *s += 4;
        return true;
    }
    /* JSON numbers only: no leading '+', no "nan"/"inf", no hex. */
    const char *p = *s;
    if (*p == '-')
        p++;
    if (!(*p >= '0' && *p <= '9'))
        return false;
    char *end;
    v->type = J_NUM;
    v->num = strtod(*s, &end);
    *s = end;
    return true;
}

static void jfree(jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

/* Parses text that must be exactly one JSON object (and a newline). */
static jv json_object(const char *text)
{
    jv v;
    const char *s = text;
    cr_assert(jparse(&s, &v), "not JSON:\n%s", text);
    cr_assert_eq(v.type, J_OBJ, "not an object:\n%s", text);
    jskip(&s);
    cr_assert_eq(*s, '\0', "more than one JSON value:\n%s", text);
    return v;
}

static const jv *jget(const jv *obj, const char *key)
{
    cr_assert_eq(obj->type, J_OBJ);
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

static double jnum(const jv *v)
{
    cr_assert_not_null(v);
    cr_assert_eq(v->type, J_NUM, "not a number (type %d)", v->type);
    return v->num;
}

/* Element i of a (possibly nested) array, flattened row-major. */
static bool jflat(const jv *v, size_t *i, double *out)
{
    for (size_t k = 0; k < v->n; k++) {
        if (v->items[k].type == J_ARR) {
            if (jflat(&v->items[k], i, out))
                return true;
        } else if ((*i)-- == 0) {
            *out = v->items[k].num;
            return true;
        }
    }
    return false;
}

static double jelem(const jv *v, size_t i)
{
    double out = NAN;
    cr_assert_not_null(v);
    cr_assert_eq(v->type, J_ARR);
    cr_assert(jflat(v, &i, &out), "no element %zu", i);
    return out;
}

/* ---- tapegrad grad: results ---------------------------------------------------------------- */

static const char *MICROGRAD = "z = 2*x + 2 + x; q = relu(z) + z*x; h = relu(z*z); h + q + q*x";

Test(grad, micrograd_human)
{
    cli r = RUN("grad", MICROGRAD, "x=-4");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    cr_assert_str_eq(r.err, "");
    cli_free(&r);
}

Test(grad, micrograd_json)
{
    cli r = RUN("grad", "--json", MICROGRAD, "x=-4");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(&v, "value")), -20);
    const jv *shape = jget(&v, "shape");
    cr_assert(shape && shape->type == J_ARR && shape->n == 0);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 46);
    cr_assert_null(jget(&v, "check"));
    cr_assert_eq(v.n, 3, "value, shape, grad");
    jfree(&v);
    cli_free(&r);
}

Test(grad, tensors_in_json_and_text)
{
    cli r = RUN("grad", "--json", "W @ x", "W=[[1, 2], [3, 4]]", "x=[[1], [1]]");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    const jv *value = jget(&v, "value"), *shape = jget(&v, "shape");
    cr_assert_eq(jelem(value, 0), 3);
    cr_assert_eq(jelem(value, 1), 7);
    cr_assert_eq(shape->n, 2);
    cr_assert_eq(shape->items[0].num, 2);
    cr_assert_eq(shape->items[1].num, 1);
    const jv *gW = jget(jget(&v, "grad"), "W"), *gx = jget(jget(&v, "grad"), "x");
    cr_assert_eq(gW->n, 2, "nested lists by row");
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(jelem(gW, i), 1);
    cr_assert_eq(jelem(gx, 0), 4);
    cr_assert_eq(jelem(gx, 1), 6);
    jfree(&v);
    cli_free(&r);

    r = RUN("grad", "W @ x", "W=[[1, 2], [3, 4]]", "x=[[1], [1]]");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value [2,1] =\n  [[3],\n   [7]]\n"
                            "grad W [2,2] =\n  [[1, 1],\n   [1, 1]]\n"
                            "grad x [2,1] =\n  [[4],\n   [6]]\n");
    cli_free(&r);
    r = RUN("grad", "x * 0.5", "x=[2, -20, 0.25]");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value [3] = [    1,   -10, 0.125]\ngrad x [3] = [0.5, 0.5, 0.5]\n");
    cli_free(&r);
}

Test(grad, numbers_round_trip)
{
    cli r = RUN("grad", "--json", "x / 3", "x=1");
    expect_status(&r, 0);
    expect_has(r.out, "\"value\": 0.33333333333333331", "17 significant digits");
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(&v, "value")), 1.0 / 3.0);
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "x / 3", "x=1");
    expect_has(r.out, "value = 0.3333333333333333\n", "shortest round-trip text");
    cli_free(&r);
    /* No NaN or Infinity in JSON: they are strings. */
    r = RUN("grad", "--json", "log(x)", "x=0");
    expect_status(&r, 0);
    expect_has(r.out, "\"value\": \"-Infinity\"", "JSON");
    expect_has(r.out, "\"x\": \"Infinity\"", "JSON");
    jv w = json_object(r.out);
    jfree(&w);
    cli_free(&r);
    r = RUN("grad", "--json", "sqrt(x)", "x=-1");
    expect_has(r.out, "\"value\": \"NaN\"", "JSON");
    cli_free(&r);
}

Test(grad, dtype_f32)
{
    cli r = RUN("grad", "--json", "--dtype", "f32", "x * 0.1", "x=3");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(&v, "value")), (double)(3.0f * 0.1f));
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), (double)0.1f);
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "--dtype=f32", "x * 0.1", "x=3");
    cr_assert_str_eq(r.out, "value = 0.3\ngrad x = 0.1\n", "f32 values printed as f32");
    cli_free(&r);
}

Test(grad, rebinding_and_const)
{
    cli r = RUN("grad", "--json", "c = x; c = c * 2; c = c + 1; c", "x=3");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(&v, "value")), 7);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 2);
    jfree(&v);
    cli_free(&r);

    r = RUN("grad", "--json", "mse(p, t)", "p=[0.5, 1]", "--const", "t=[0, 1]");
    expect_status(&r, 0);
    v = json_object(r.out);
    cr_assert_eq(jnum(jget(&v, "value")), 0.125);
    const jv *g = jget(&v, "grad");
    cr_assert_eq(g->n, 1, "constants get no gradient");
    cr_assert_eq(jelem(jget(g, "p"), 0), 0.5);
    cr_assert_eq(jelem(jget(g, "p"), 1), 0);
    jfree(&v);
    cli_free(&r);

    /* Labels for cross_entropy are constants; --const=NAME=VALUE works too. */
    r = RUN("grad", "cross_entropy(z, y)", "z=[[1, 2, 3], [1, 1, 1]]", "--const=y=[2, 0]");
    expect_status(&r, 0);
    expect_has(r.out, "grad z [2,3] =", "output");
    cli_free(&r);
}

Test(grad, seed)
{
    cli r = RUN("grad", "--json", "x * [1, 2, 3]", "x=2");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 6, "default seed: all ones");
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "--json", "--seed", "[1, 0, 0.5]", "x * [1, 2, 3]", "x=2");
    v = json_object(r.out);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 2.5);
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "--json", "--seed=2", "x * [1, 2, 3]", "x=2");
    v = json_object(r.out);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 12, "a number seed fills the shape");
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "--seed", "[1, 2]", "x * [1, 2, 3]", "x=2");
    expect_status(&r, 1);
    expect_has(r.err, "--seed has shape [2], the output has shape [3]", "stderr");
    cli_free(&r);
    r = RUN("grad", "--seed", "[1, 2", "x", "x=2");
    expect_status(&r, 2);
    expect_has(r.err, "bad value for --seed", "stderr");
    cli_free(&r);
}

Test(grad, check)
{
    cli r = RUN("grad", "--check", "W = [[1, 2], [3, 4.5]]; y = W @ x; sum(tanh(y)^2)",
                "x=[[0.5], [-1]]");
    expect_status(&r, 0);
    expect_has(r.out, "check (central differences in f64, tolerance 1e-06): ok\n  x: max error",
               "stdout");
    cli_free(&r);
    r = RUN("grad", "--check", "--json", "softmax(x) * w", "x=[1, 2, 3]", "w=[0.5, -1, 2]",
            "--dtype", "f32");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    const jv *c = jget(&v, "check");
    cr_assert_not_null(c);
    cr_assert_eq(jget(c, "ok")->type, J_BOOL);
    cr_assert_eq(jget(c, "ok")->num, 1);
    cr_assert_eq(jnum(jget(c, "tol")), 1e-6);
    cr_assert_lt(jnum(jget(jget(c, "max_error"), "x")), 1e-6);
    cr_assert_lt(jnum(jget(jget(c, "max_error"), "w")), 1e-6);
    jfree(&v);
    cli_free(&r);
    /* relu at its kink: backward says 0, central differences say 1/2. */
    r = RUN("grad", "--check", "relu(x)", "x=0");
    expect_status(&r, 1);
    expect_has(r.out, "FAILED", "stdout");
    expect_has(r.out, "x: max error 0.5  (above tolerance)", "stdout");
    cli_free(&r);
    r = RUN("grad", "--check", "--tol", "0.6", "relu(x)", "x=0");
    expect_status(&r, 0);
    cli_free(&r);
    r = RUN("grad", "--check", "--json", "relu(x)", "x=0");
    expect_status(&r, 1);
    v = json_object(r.out);
    cr_assert_eq(jget(jget(&v, "check"), "ok")->num, 0);
    jfree(&v);
    cli_free(&r);
    /* A check that cannot run (nothing differentiable reaches the output) fails, saying why. */
    r = RUN("grad", "--check", "detach(x) * 3", "x=2");
    expect_status(&r, 1);
    expect_has(r.out, "value = 6\ngrad x = 0\ncheck: could not run: ", "stdout");
    cli_free(&r);
    r = RUN("grad", "--check", "--json", "detach(x) * 3", "x=2");
    expect_status(&r, 1);
    v = json_object(r.out);
    cr_assert_eq(jget(jget(&v, "check"), "ok")->num, 0);
    cr_assert_eq(jget(jget(&v, "check"), "error")->type, J_STR);
    jfree(&v);
    cli_free(&r);
}

Test(grad, program_from_file_and_stdin)
{
    char path[] = "/tmp/tg_cli_prog_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *prog = "# micrograd's test\nz = 2*x + 2 + x\nq = relu(z) + z*x\nh = relu(z*z)\n"
                       "h + q + q*x\n";
    cr_assert_eq(write(fd, prog, strlen(prog)), (ssize_t)strlen(prog));
    close(fd);
    cli r = RUN("grad", "-f", path, "x=-4");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    cli_free(&r);
    r = RUN("grad", "x=-4", "--json", "-f", path); /* options and inputs in any order */
    expect_status(&r, 0);
    jv v = json_object(r.out);
    cr_assert_eq(jnum(jget(jget(&v, "grad"), "x")), 46);
    jfree(&v);
    cli_free(&r);
    unlink(path);
    r = RUN_STDIN(prog, "grad", "-f", "-", "x=-4");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    cli_free(&r);
    /* Errors in a file point into the file. */
    r = RUN_STDIN("a = x\nb = a +* 2\nb\n", "grad", "-f", "-", "x=1");
    expect_status(&r, 1);
    cr_assert_str_eq(r.err, "error: 2:8: expected an expression, found '*'\n    b = a +* 2\n"
                            "           ^\n");
    cli_free(&r);
    r = RUN("grad", "-f", "/nonexistent/prog.tgx", "x=1");
    expect_status(&r, 1);
    expect_has(r.err, "tapegrad grad: cannot read '/nonexistent/prog.tgx': No such file", "stderr");
    cli_free(&r);
}

Test(grad, programs_starting_with_minus)
{
    cli r = RUN("grad", "-x^2", "x=3");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -9\ngrad x = -6\n");
    cli_free(&r);
    r = RUN("grad", "--", "-x", "x=3");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -3\ngrad x = -1\n");
    cli_free(&r);
    r = RUN("grad", "-x", "x=3");
    expect_status(&r, 2);
    expect_has(r.err, "unknown option '-x' (a program that starts with '-' goes after '--')",
               "stderr");
    cli_free(&r);
}

/* ---- tapegrad grad: errors ------------------------------------------------------------------ */

Test(grad_errors, program_errors_exit_1_with_caret)
{
    cli r = RUN("grad", "z = 2*x + tanhh(x)\nz", "x=1");
    expect_status(&r, 1);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "error: 1:11: unknown function 'tanhh' (did you mean 'tanh'?)\n"
                            "    z = 2*x + tanhh(x)\n              ^~~~~\n");
    cli_free(&r);
    r = RUN("grad", "--json", "a + b", "a=[[1, 2, 3], [4, 5, 6]]", "b=[1, 2, 3, 4]");
    expect_status(&r, 1);
    cr_assert_str_eq(r.out, "", "no JSON on failure");
    expect_has(r.err, "error: 1:1-5: add: [2,3] and [4] do not broadcast", "stderr");
    expect_has(r.err, "\n    a + b\n    ^~~~~\n", "stderr");
    cli_free(&r);
    r = RUN("grad", "x * y + 1", "x=2");
    expect_status(&r, 1);
    cr_assert_str_eq(r.err, "error: 1:5: no value for input 'y'\n    x * y + 1\n        ^\n"
                            "hint: give it a value: y=VALUE to differentiate with respect to "
                            "it, --const y=VALUE for a constant\n");
    cli_free(&r);
    r = RUN("grad", "cross_entropy(z, y)", "z=[[1, 2]]", "--const", "y=[3]");
    expect_status(&r, 1);
    expect_has(r.err, "error: 1:1-19: onehot: label 0 is 3, not an integer class id in 0..1",
               "stderr");
    cli_free(&r);
}

Test(grad_errors, usage_errors_exit_2)
{
    struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"grad", NULL}, "tapegrad grad: no program given"},
        {{"grad", "--bogus", "x", "x=1", NULL}, "tapegrad grad: unknown option '--bogus'"},
        {{"grad", "x", "x", NULL}, "tapegrad grad: expected NAME=VALUE, got 'x'"},
        {{"grad", "x", "2x=1", NULL}, "tapegrad grad: '2x' in '2x=1' is not a name"},
        {{"grad", "x", "x=[1, 2", NULL},
         "tapegrad grad: bad value for x: column 6: expected ',' or ']' in a list, found end "
         "of input"},
        {{"grad", "x", "x=[[1], [2, 3]]", NULL},
         "tapegrad grad: bad value for x: column 7: ragged tensor literal"},
        {{"grad", "x", "x=1", "x=2", NULL}, "tapegrad grad: 'x' is bound twice"},
        {{"grad", "x", "x=1", "--const", "x=2", NULL}, "tapegrad grad: 'x' is bound twice"},
        {{"grad", "x", "sum=1", NULL},
         "tapegrad grad: 'sum' is a function name and cannot be an input"},
        {{"grad", "--dtype", "f16", "x", "x=1", NULL},
         "tapegrad grad: --dtype must be f64 or f32, not 'f16'"},
        {{"grad", "x", "x=1", "--seed", NULL}, "tapegrad grad: option '--seed' needs a value"},
        {{"grad", "--tol", "abc", "x", "x=1", NULL},
         "tapegrad grad: --tol must be a number >= 0, not 'abc'"},
        {{"grad", "--render", "g.gif", "x", "x=1", NULL},
         "tapegrad grad: --render: cannot tell the format of 'g.gif'"},
        {{"grad", "--json", "--dot", "-", "x", "x=1"},
         "tapegrad grad: --dot - and --json both want stdout"},
        {{"frobnicate", NULL}, "tapegrad: unknown command 'frobnicate'"},
        {{"--frobnicate", NULL}, "tapegrad: unknown option '--frobnicate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[8] = {0};
        for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
            args[k] = cases[i].args[k];
        cli r = run_in(NULL, args);
        expect_status(&r, 2);
        cr_assert_str_eq(r.out, "", "case %zu", i);
        cr_assert(strncmp(r.err, cases[i].msg, strlen(cases[i].msg)) == 0,
                  "case %zu: stderr\n%s\nwant it to start with\n%s", i, r.err, cases[i].msg);
        expect_has(r.err, "--help' for more information.\n", "usage hint");
        cli_free(&r);
    }
    cli r = run_in(NULL, (const char *const[]){NULL});
    expect_status(&r, 2);
    expect_has(r.err, "usage: tapegrad <command>", "stderr");
    cli_free(&r);
}

Test(grad_errors, unused_binding_warns)
{
    cli r = RUN("grad", "--json", "x * 2", "x=1", "y=[1, 2]");
    expect_status(&r, 0);
    cr_assert_str_eq(r.err, "tapegrad grad: warning: the program does not use 'y'\n");
    jv v = json_object(r.out);
    cr_assert_eq(jelem(jget(jget(&v, "grad"), "y"), 1), 0, "an unused input has zero gradient");
    jfree(&v);
    cli_free(&r);
    /* An output that depends on no input through differentiable ops: zero gradients. */
    r = RUN("grad", "detach(x) * 3", "x=2");
    expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = 6\ngrad x = 0\n");
    cli_free(&r);
}

/* ---- graphs --------------------------------------------------------------------------------- */

Test(grad, dot_and_render)
{
    char dir[] = "/tmp/tg_cli_dot_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char dot[4096], svg[4096];
    snprintf(dot, sizeof dot, "%s/g.dot", dir);
    snprintf(svg, sizeof svg, "%s/g.svg", dir);
    cli r = RUN("grad", "--dot", dot, "h = tanh(x * w); h * 2", "x=0.5", "w=-1");
    expect_status(&r, 0);
    FILE *f = fopen(dot, "r");
    cr_assert_not_null(f, "no dot file");
    char *text = slurp(f);
    fclose(f);
    expect_has(text, "digraph", "dot file");
    expect_has(text, "h", "dot file names the bound intermediate");
    free(text);
    cli_free(&r);
    r = RUN("grad", "--json", "--dot", dot, "x", "x=1");
    expect_status(&r, 0);
    jv v = json_object(r.out);
    jfree(&v);
    cli_free(&r);
    r = RUN("grad", "--dot", "-", "x * 2", "x=1");
    expect_status(&r, 0);
    expect_has(r.out, "value = 2\ngrad x = 2\n", "stdout");
    expect_has(r.out, "digraph", "stdout");
    cli_free(&r);
    r = RUN("grad", "--render", svg, "x * 2", "x=1");
    if (tg_dot_can_render()) {
        expect_status(&r, 0);
        f = fopen(svg, "r");
        cr_assert_not_null(f, "no svg file");
        text = slurp(f);
        fclose(f);
        expect_has(text, "<svg", "svg file");
        free(text);
        unlink(svg);
    } else {
        expect_status(&r, 1);
        expect_has(r.err, "tapegrad grad: --render:", "stderr");
    }
    cli_free(&r);
    unlink(dot);
    rmdir(dir);
}

/* ---- top level ------------------------------------------------------------------------------- */

Test(top, help_and_version)
{
    cli r = RUN("--version");
    expect_status(&r, 0);
    char want[64];
    snprintf(want, sizeof want, "tapegrad %s\n", tg_version());
    cr_assert_str_eq(r.out, want);
    cli_free(&r);
    r = RUN("--help");
    expect_status(&r, 0);
    expect_has(r.out, "usage: tapegrad <command>", "stdout");
    expect_has(r.out, "grad", "stdout");
    cli_free(&r);
    r = RUN("grad", "--help");
    expect_status(&r, 0);
    expect_has(r.out, "usage: tapegrad grad", "stdout");
    expect_has(r.out, "--check", "stdout");
    cr_assert_str_eq(r.err, "");
    cli_free(&r);
    r = RUN("help", "grad");
    expect_status(&r, 0);
    expect_has(r.out, "usage: tapegrad grad", "stdout");
    cli_free(&r);
}
