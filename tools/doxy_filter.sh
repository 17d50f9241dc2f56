#!/bin/sh
# tools/doxy_filter.sh FILE: Doxygen's INPUT_FILTER for the public headers (docs/Doxyfile.in).
# The headers are written for people: plain /* */ comments in a tutorial voice, one before each
# declaration (or a group of declarations) and short ones after enum values and struct fields.
# This turns them into Doxygen comments on the fly, leaving the headers as they are:
#   - the comment that opens the file          -> /** @file NAME ... */ (the file's page;
#     its "NAME: text" becomes NAME and the text, capitalized)
#   - a comment on its own line                -> /** ... */ (documents what follows);
#     when it is followed by several declarations with no blank line or comment between
#     them, they become one member group (/**@{*/ before the comment, /**@}*/ after the
#     last), so every one of them carries the comment (Doxyfile: DISTRIBUTE_GROUP_DOC)
#   - a comment after code on the same line     -> /**< ... */ (documents that code)
#   - inside comments, characters Doxygen or Markdown would take as commands (\ @ < > # & %
#     and a leading "+") are escaped, so the text reads exactly as written; names such as
#     tg_backward stay plain words, which Doxygen links to their entries.
# Line numbers are kept (no line is added or removed), so warnings point into the headers.
# Plain awk: no python needed on a fresh machine.
exec awk '
function escape(s) {
    gsub(/\\/, "\\\\", s)
    gsub(/@/, "\\@", s)
    gsub(/</, "\\<", s)
    gsub(/>/, "\\>", s)
    gsub(/#/, "\\#", s)
    gsub(/&/, "\\\\\\&", s)
    gsub(/%/, "\\%", s)
    return s
}
# Is line i the start of a declaration (not blank, not a comment, not a preprocessor line
# other than #define, not a closing brace or extern "C")?
function is_decl(i,    t) {
    t = line[i]
    if (t ~ /^[ \t]*$/ || t ~ /^[ \t]*\/\*/ || t ~ /^[ \t]*\}/) return 0
    if (t ~ /^[ \t]*#/) return t ~ /^[ \t]*#[ \t]*define[ \t]/
    if (t ~ /^[ \t]*extern "C"/) return 0
    return 1
}
# The last line of the declaration that starts at line i: a #define with its continuations,
# else the line where braces and parentheses are balanced and a ";" ends it.
function decl_end(i,    d, t, j, c) {
    if (line[i] ~ /^[ \t]*#/) {
        while (line[i] ~ /\\[ \t]*$/ && i < n) i++
        return i
    }
    d = 0; inc = 0
    for (j = i; j <= n; j++) {
        t = code_of(line[j])
        c = t; d += gsub(/[{(]/, "", c)
        c = t; d -= gsub(/[})]/, "", c)
        if (d <= 0 && t ~ /;[ \t]*$/) return j
        if (d <= 0 && t ~ /;/ && j > i) return j
    }
    return n
}
# The code of a line, its comments removed; inc carries "inside a comment" across lines.
function code_of(t,    r, p) {
    r = ""
    while (t != "") {
        if (inc) {
            p = index(t, "*/")
            if (!p) return r
            t = substr(t, p + 2); inc = 0
        } else {
            p = index(t, "/*")
            if (!p) return r t
            r = r substr(t, 1, p - 1); t = substr(t, p + 2); inc = 1
        }
    }
    return r
}
{ line[++n] = $0 }
END {
    in_comment = 0; first = 1; depth = 0
    for (i = 1; i <= n; i++) {
        t = line[i]
        if (in_comment) {
            if (t ~ /\*\//) {
                pre = substr(t, 1, index(t, "*/") - 1)
                post = substr(t, index(t, "*/"))
                t = escape(pre) post
                in_comment = 0
            } else {
                t = escape(t)
            }
            out[i] = t
            continue
        }
        p = index(t, "/*")
        if (p == 0) {
            out[i] = t
            if (group_close[i]) out[i] = out[i] " /**@}*/"
            if (t ~ /^[ \t]*extern "C"/) continue
            c = t; depth += gsub(/\{/, "", c); c = t; depth -= gsub(/\}/, "", c)
            continue
        }
        code = substr(t, 1, p - 1)
        rest = substr(t, p + 2)
        if (code ~ /[^ \t]/) {
            opener = "/**<"                     # after code: documents that code
            lead = ""
        } else if (first) {
            opener = "/** @file"                # the file comment
            lead = ""
            # "tapegrad/tape.h: the tape. ..." -> the name for @file, then "The tape. ..."
            if (match(rest, /^[ \t]*[^ \t:]+: /)) {
                fname = substr(rest, 1, RLENGTH - 2); sub(/^[ \t]*/, "", fname)
                rest = substr(rest, RLENGTH + 1)
                rest = " " fname " " toupper(substr(rest, 1, 1)) substr(rest, 2)
            } else if (rest !~ /^[ \t]/) rest = " " rest
        } else {
            opener = "/**"
            lead = ""
        }
        first = 0
        # where does this comment end, and how many declarations follow it back to back?
        if (index(rest, "*/")) {
            cend = i
        } else {
            for (cend = i + 1; cend <= n && index(line[cend], "*/") == 0; cend++) ;
        }
        if (opener == "/**" && depth == 0) {
            k = 0; j = cend + 1
            while (j <= n && is_decl(j)) { k++; last = decl_end(j); j = last + 1 }
            if (k >= 2) { code = "/**@{*/ " code; group_close[last] = 1 }
        }
        if (index(rest, "*/")) {
            q = index(rest, "*/")
            t = code opener escape(substr(rest, 1, q - 1)) substr(rest, q)
        } else {
            t = code opener escape(rest)
            in_comment = 1
        }
        out[i] = t
        if (group_close[i]) out[i] = out[i] " /**@}*/"
        sub(/^\/\*\*@\{\*\/ /, "", code)
        c = code; depth += gsub(/\{/, "", c); c = code; depth -= gsub(/\}/, "", c)
    }
    for (i = 1; i <= n; i++) print out[i]
}
' "$1"
