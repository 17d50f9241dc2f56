/* diag.c: tgx error messages. An error is a reason plus a byte span in the source; it is
 * shown the way compilers do, "error: L:C: reason", then the source line and a caret line
 * under the span, so a user can see at once which part of a long program is wrong. */
#include "expr_internal.h"

#include <stdio.h>

/* Longest excerpt of a source line shown; longer lines are clipped around the error, so
 * the formatted message always fits tg_last_error()'s buffer. */
#define EXCERPT_WIDTH 72
#define EXCERPT_LEAD 32 /* columns kept before the error when clipping */

/* A snprintf-like writer: counts every byte, stores what fits. */
typedef struct sbuf {
    char *buf;
    size_t size, len;
} sbuf;

static void sb_putc(sbuf *b, char c)
{
    if (b->len + 1 < b->size)
        b->buf[b->len] = c;
    b->len++;
}

static void sb_puts(sbuf *b, const char *s)
{
    while (*s)
        sb_putc(b, *s++);
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_puts(b, tmp);
}

void tg_expr__locate(const char *src, size_t len, size_t off, int *line, int *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l > INT32_MAX ? INT32_MAX : (int)l;
    *col = c > INT32_MAX ? INT32_MAX : (int)c;
}

/* The length of the UTF-8 sequence that starts s[0..n) (s[0] >= 0x80) when it is a whole,
 * valid one and not a control character (U+0080..U+009F, which a terminal may act on), else 0.
 * A sequence cut by the end of the window is not whole. */
static size_t utf8_shown(const unsigned char *s, size_t n)
{
    static const uint32_t MIN[5] = {0, 0, 0x80, 0x800, 0x10000}; /* shorter is overlong */
    unsigned c = s[0];
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < MIN[len] || cp <= 0x9f || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The source line containing the error, clipped to a window, and a caret line under the
 * span (only its part on this line). Tabs are copied into the caret line so it aligns. (The
 * bytes before the error on its line are ASCII: the lexer stops at the first that is not, and
 * a comment, where others may be, runs to the end of the line.) */
static void excerpt(sbuf *b, const char *src, size_t len, size_t off, size_t end)
{
    if (off > len)
        off = len;
    size_t ls = off, le = off;
    while (ls > 0 && src[ls - 1] != '\n')
        ls--;
    while (le < len && src[le] != '\n')
        le++;
    if (le > ls && src[le - 1] == '\r')
        le--;
    size_t col0 = off - ls, n = le - ls, ws = 0, we = n;
    if (n > EXCERPT_WIDTH) {
        ws = col0 > EXCERPT_LEAD ? col0 - EXCERPT_LEAD : 0;
        we = ws + EXCERPT_WIDTH < n ? ws + EXCERPT_WIDTH : n;
    }
    sb_puts(b, "\n    ");
    if (ws > 0)
        sb_puts(b, "...");
    for (size_t i = ws; i < we;) {
        unsigned char ch = (unsigned char)src[ls + i];
        /* Control characters would garble a terminal, and bytes that are not UTF-8 (or a
         * character the window cuts) make the message invalid text; show them as '?'. */
        size_t k = ch < 0x80 ? 1 : utf8_shown((const unsigned char *)src + ls + i, we - i);
        if (k == 0) {
            sb_putc(b, '?');
            i++;
        } else if (k == 1) {
            sb_putc(b, (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch);
            i++;
        } else {
            for (size_t j = 0; j < k; j++, i++)
                sb_putc(b, src[ls + i]);
        }
    }
    if (we < n)
        sb_puts(b, "...");
    sb_puts(b, "\n    ");
    if (ws > 0)
        sb_puts(b, "   ");
    for (size_t i = ws; i < col0 && i < we; i++)
        sb_putc(b, src[ls + i] == '\t' ? '\t' : ' ');
    sb_putc(b, '^');
    size_t last = end < ls + we ? end : ls + we; /* the span's end, within the window */
    for (size_t i = off + 1; i < last; i++)
        sb_putc(b, '~');
}

size_t tg_expr_error_format(const tg_expr_error *err, const char *src, size_t len, char *buf,
                            size_t size)
{
    sbuf b = {buf, buf ? size : 0, 0};
    if (!err) {
        sb_puts(&b, "error: (no error given)");
    } else if (err->line <= 0 || !src) {
        sb_puts(&b, "error: ");
        sb_puts(&b, err->message);
    } else {
        sb_printf(&b, "error: %d:%d", err->line, err->col);
        /* Syntax errors name where reading stopped; evaluation errors name the whole
         * expression at fault. The caret line underlines the span either way. */
        if (err->status == TG_EFORMAT)
            ;
        else if (err->end_line != err->line)
            sb_printf(&b, "-%d:%d", err->end_line, err->end_col);
        else if (err->end_col != err->col)
            sb_printf(&b, "-%d", err->end_col);
        sb_puts(&b, ": ");
        sb_puts(&b, err->message);
        excerpt(&b, src, len, err->offset, err->end);
    }
    if (b.size)
        b.buf[b.len < b.size ? b.len : b.size - 1] = '\0';
    return b.len;
}

tg_status tg_expr__fail(tg_expr_error *err, tg_status status, const char *src, size_t len,
                        size_t start, size_t end, const char *fmt, ...)
{
    tg_expr_error local;
    if (!err)
        err = &local;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    if (src) {
        if (start > len)
            start = len;
        if (end < start)
            end = start;
        err->offset = start;
        err->end = end;
        tg_expr__locate(src, len, start, &err->line, &err->col);
        if (end > start + 1)
            tg_expr__locate(src, len, end - 1, &err->end_line, &err->end_col);
        else {
            err->end_line = err->line;
            err->end_col = err->col;
        }
    } else {
        err->offset = err->end = 0;
        err->line = err->col = err->end_line = err->end_col = 0;
    }
    char msg[512];
    tg_expr_error_format(err, src, len, msg, sizeof msg);
    return tg__error(status, "%s", msg);
}
