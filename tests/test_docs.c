/* test_docs.c: the terminal sessions of `tapegrad grad` and `tapegrad minimize` in the README
 * and docs/tgx.md are run as printed, and what they print must be what the page shows. A page
 * that a change of output left behind fails here, not in front of a reader.
 *
 * A session is a fenced block in which lines starting with "$ " are commands (continued on
 * lines starting with ">", the shell's second prompt, or after a trailing backslash), each
 * followed by its output up to the next command or the end of the block. Commands of other
 * subcommands are not run: train's output carries wall times and the last digits of f32
 * sums, which differ from machine to machine. The command runs in /bin/sh in an empty
 * directory, with `tapegrad` the build's and stderr merged into stdout, as a terminal shows
 * them.
 * Lines must match exactly, except that numbers may differ in their last digits (relative
 * 1e-9, or 1e-12 absolute near zero): the same program may sum in another order on a machine
 * with other kernels, and a page shows one machine's digits. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/proc.h"

/* printf into a new buffer (caller frees). */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Whether text at p begins a number in both outputs' sense: a digit, or a sign or point
 * before one. */
static bool starts_number(const char *p)
{
    if (isdigit((unsigned char)p[0]))
        return true;
    return (p[0] == '-' || p[0] == '.') && isdigit((unsigned char)p[1]);
}

static bool close_enough(double a, double b)
{
    return a == b || fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)) + 1e-12;
}

/* Whether output line `got` is the page's `want` (see the top of the file). */
static bool same_line(const char *want, const char *got)
{
    while (*want && *got) {
        if (starts_number(want) && starts_number(got)) {
            char *want_end, *got_end;
            double a = strtod(want, &want_end), b = strtod(got, &got_end);
            if (!close_enough(a, b))
                return false;
            want = want_end, got = got_end;
        } else if (*want++ != *got++) {
            return false;
        }
    }
    return *want == *got;
}

/* The next line of text at *p (without its newline, in a buffer the caller frees), or NULL at
 * the end; *p moves past it. */
static char *next_line(const char **p)
{
    if (!**p)
        return NULL;
    const char *nl = strchr(*p, '\n');
    size_t n = nl ? (size_t)(nl - *p) : strlen(*p);
    char *line = strndup(*p, n);
    cr_assert_not_null(line);
    *p += n + (nl != NULL);
    return line;
}

/* Whether the shell would read on after command: it ends with a backslash, or a single quote
 * is open (the pages quote programs in single quotes only). */
static bool reads_on(const char *command)
{
    size_t n = strlen(command), quotes = 0;
    for (size_t i = 0; i < n; i++)
        quotes += command[i] == '\'';
    return (n > 0 && command[n - 1] == '\\') || quotes % 2 == 1;
}

/* Runs one command of page `rel` with its expected output, both as lines joined by '\n'; the
 * command starts at line `at` of the page. */
static void check_session(const char *rel, const char *command, const char *want, int at)
{
    char dir[] = "/tmp/tg_docs_XXXXXX"; /* where a session that writes a file would write it */
    cr_assert_not_null(mkdtemp(dir));
    char *script =
        format("tapegrad() { \"%s/tapegrad\" \"$@\"; }\n%s", tp_env("TG_TOOLS_DIR"), command);
    tp_run r = tp_run_argv((const char *const[]){"/bin/sh", "-c", script, NULL},
                           &(tp_opts){.cwd = dir, .merge = true});
    cr_expect_eq(rmdir(dir), 0, "%s:%d: `%s` left files behind", rel, at, command);
    const char *w = want, *g = r.out;
    for (int n = 1;; n++) {
        char *wl = next_line(&w), *gl = next_line(&g);
        if (!wl && !gl)
            break;
        cr_expect(wl && gl && same_line(wl, gl),
                  "%s:%d: `%s`: output line %d is\n  %s\nwhere the page shows\n  %s", rel, at,
                  command, n, gl ? gl : "(no more output)", wl ? wl : "(no more lines)");
        free(wl);
        free(gl);
        if (!(wl && gl))
            break;
    }
    tp_run_free(&r);
    free(script);
}

static bool runs_here(const char *command)
{
    return strncmp(command, "tapegrad grad ", 14) == 0 ||
           strncmp(command, "tapegrad minimize ", 18) == 0;
}

/* Checks every session of page `rel` (relative to the source tree) that runs here; returns how
 * many there were. */
static int check_page(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", tp_env("TG_SOURCE_DIR"), rel);
    char *text = tp_slurp(path);
    const char *p = text;
    bool fenced = false;
    int line_no = 0, checked = 0;
    char *line = next_line(&p);
    while (line) {
        line_no++;
        if (strncmp(line, "```", 3) == 0) {
            fenced = !fenced;
            free(line);
            line = next_line(&p);
            continue;
        }
        if (!fenced || strncmp(line, "$ ", 2) != 0) {
            free(line);
            line = next_line(&p);
            continue;
        }
        /* a command, with its continuation lines */
        const int at = line_no;
        char *command = strdup(line + 2);
        cr_assert_not_null(command);
        free(line);
        while ((line = next_line(&p)) != NULL) {
            if (!reads_on(command)) /* an output line may start with '>' too */
                break;
            line_no++;
            const char *rest = line[0] == '>' ? line + 1 + (line[1] == ' ') : line;
            char *joined = format("%s\n%s", command, rest);
            free(command);
            command = joined;
            free(line);
        }
        /* its output: up to the next command or the end of the block */
        size_t cap = 1, len = 0;
        char *want = calloc(1, cap);
        cr_assert_not_null(want);
        while (line && strncmp(line, "$ ", 2) != 0 && strncmp(line, "```", 3) != 0) {
            line_no++;
            const size_t n = strlen(line);
            char *grown = realloc(want, cap += n + 1);
            cr_assert_not_null(grown);
            want = grown;
            memcpy(want + len, line, n);
            want[len += n] = '\n';
            want[++len] = '\0';
            free(line);
            line = next_line(&p);
        }
        if (runs_here(command)) {
            check_session(rel, command, want, at);
            checked++;
        }
        free(command);
        free(want);
    }
    free(text);
    return checked;
}

/* Each page's count of grad and minimize sessions (update it when the page gains or loses one):
 * a parser that found none would otherwise pass. */
Test(docs, readme_sessions_print_what_it_shows)
{
    cr_expect_eq(check_page("README.md"), 8);
}

Test(docs, tgx_sessions_print_what_it_shows)
{
    cr_expect_eq(check_page("docs/tgx.md"), 1);
}
