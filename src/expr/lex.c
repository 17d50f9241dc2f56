/* lex.c: the tgx lexer (docs/tgx.md, "Grammar"). It reads one token at a time from a
 * position and keeps no state, so the parser can also use it to look ahead. */
#include "expr_internal.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

/* strtod on a copy of the token, with the locale's decimal point put in: a host program may
 * have called setlocale, and "1.5" must not become 1 in a locale that writes "1,5", nor in
 * one whose decimal point is a multibyte character (ps_AF's U+066B). */
static double to_double(const char *s, size_t n)
{
    char buf[512];
    const char *dp = localeconv()->decimal_point;
    size_t dn = dp ? strlen(dp) : 0;
    const char *dot = memchr(s, '.', n);
    if (dot && dn > 0 && dn <= 16 && strcmp(dp, ".") != 0) {
        size_t k = (size_t)(dot - s);
        TG_ASSERT(n - 1 + dn < sizeof buf); /* a number has at most 400 bytes */
        memcpy(buf, s, k);
        memcpy(buf + k, dp, dn);
        memcpy(buf + k + dn, dot + 1, n - k - 1);
        buf[n - 1 + dn] = '\0';
    } else {
        TG_ASSERT(n < sizeof buf);
        memcpy(buf, s, n);
        buf[n] = '\0';
    }
    return strtod(buf, NULL);
}

static bool lex_number(const char *s, size_t n, size_t pos, bool value, tg_token *t, char *msg,
                       size_t size)
{
    size_t i = pos;
    while (i < n && is_digit(s[i]))
        i++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++;
    }
    bool has_exponent = false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit(s[j])) {
            has_exponent = true;
            i = j;
            while (i < n && is_digit(s[i]))
                i++;
        }
    }
    t->start = pos;
    t->end = i;
    if (i < n && (is_alpha(s[i]) || s[i] == '.')) {
        /* an exponent without digits: "1e", "1e+" */
        const bool exponent = !has_exponent && (s[i] == 'e' || s[i] == 'E');
        size_t j = exponent && i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-') ? i + 2 : i;
        while (j < n && (is_alnum(s[j]) || s[j] == '.'))
            j++;
        t->end = j;
        /* 0x10 or 0x1p3 is a hexadecimal number, not the product 0*x10 (nor, in a value,
         * any product at all). */
        if (i == pos + 1 && s[pos] == '0' && (s[i] == 'x' || s[i] == 'X'))
            snprintf(msg, size, "malformed number '%.*s' (tgx numbers are decimal: no hexadecimal)",
                     TG_EXPR_CLIP(j - pos), s + pos);
        else if (exponent && j == i + 1 + (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-')))
            snprintf(msg, size, "malformed number '%.*s' (its exponent has no digits)",
                     TG_EXPR_CLIP(j - pos), s + pos);
        else if (is_alpha(s[i]) && s[i] != 'e' && s[i] != 'E' && !value)
            snprintf(msg, size, "malformed number '%.*s' (write %.*s*%.*s for a product)",
                     TG_EXPR_CLIP(j - pos), s + pos, TG_EXPR_CLIP(i - pos), s + pos,
                     TG_EXPR_CLIP(j - i), s + i);
        else
            snprintf(msg, size, "malformed number '%.*s'", TG_EXPR_CLIP(j - pos), s + pos);
        return false;
    }
    if (i - pos > 400) {
        snprintf(msg, size, "number literal of %zu characters is too long", i - pos);
        return false;
    }
    t->kind = TG_TOK_NUM;
    t->num = to_double(s + pos, i - pos);
    if (!isfinite(t->num)) {
        snprintf(msg, size, "number %.*s is too large for a double", TG_EXPR_CLIP(i - pos),
                 s + pos);
        return false;
    }
    return true;
}

bool tg_expr__lex(const char *s, size_t n, size_t pos, bool value, tg_token *t, char *msg,
                  size_t size)
{
    for (;;) {
        while (pos < n && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r' || s[pos] == '\f' ||
                           s[pos] == '\v'))
            pos++;
        if (pos < n && s[pos] == '#') {
            /* A comment ends at a NUL byte too, which is then an error as anywhere else:
             * tg_program_source's copy would end there, and programs hold no NUL. */
            while (pos < n && s[pos] != '\n' && s[pos] != '\0')
                pos++;
            continue;
        }
        break;
    }
    t->start = pos;
    t->end = pos + 1;
    t->num = 0;
    if (pos >= n) {
        t->kind = TG_TOK_EOF;
        t->end = pos;
        return true;
    }
    char c = s[pos];
    switch (c) {
    case '\n': t->kind = TG_TOK_NEWLINE; return true;
    case ';': t->kind = TG_TOK_SEMI; return true;
    case '+': t->kind = TG_TOK_PLUS; return true;
    case '-': t->kind = TG_TOK_MINUS; return true;
    case '/': t->kind = TG_TOK_SLASH; return true;
    case '@': t->kind = TG_TOK_AT; return true;
    case '^': t->kind = TG_TOK_CARET; return true;
    case '(': t->kind = TG_TOK_LPAREN; return true;
    case ')': t->kind = TG_TOK_RPAREN; return true;
    case '[': t->kind = TG_TOK_LBRACK; return true;
    case ']': t->kind = TG_TOK_RBRACK; return true;
    case ',': t->kind = TG_TOK_COMMA; return true;
    case ':': t->kind = TG_TOK_COLON; return true;
    case '<':
    case '>':
    case '=':
    case '!': {
        bool eq = pos + 1 < n && s[pos + 1] == '=';
        if (eq)
            t->end = pos + 2;
        if (c == '<')
            t->kind = eq ? TG_TOK_LE : TG_TOK_LT;
        else if (c == '>')
            t->kind = eq ? TG_TOK_GE : TG_TOK_GT;
        else if (c == '=')
            t->kind = eq ? TG_TOK_EQ : TG_TOK_ASSIGN;
        else if (eq)
            t->kind = TG_TOK_NE;
        else {
            snprintf(msg, size,
                     "'!' is not an operator in tgx (write != for 'not equal', "
                     "1 - m for the negation of a mask m)");
            return false;
        }
        return true;
    }
    case '*':
        if (pos + 1 < n && s[pos + 1] == '*') {
            t->end = pos + 2;
            snprintf(msg, size, "'**' is not an operator in tgx: write powers as x^2");
            return false;
        }
        t->kind = TG_TOK_STAR;
        return true;
    default: break;
    }
    if (is_digit(c) || (c == '.' && pos + 1 < n && is_digit(s[pos + 1])))
        return lex_number(s, n, pos, value, t, msg, size);
    if (is_alpha(c)) {
        size_t i = pos;
        while (i < n && is_alnum(s[i]))
            i++;
        t->kind = TG_TOK_NAME;
        t->end = i;
        return true;
    }
    unsigned char u = (unsigned char)c;
    if (u > 0x20 && u < 0x7f)
        snprintf(msg, size, "unexpected character '%c'", c);
    else if (u == 0)
        snprintf(msg, size, "unexpected NUL byte");
    else
        snprintf(msg, size, "unexpected byte 0x%02x (tgx is ASCII outside comments)", u);
    return false;
}
