#!/bin/sh
# tests/install/man.sh TAPEGRAD MANPAGE: the man page made by tools/man.sh (build: man/tapegrad.1)
# matches the command it documents: the version of `TAPEGRAD --version`, a section for every
# subcommand `TAPEGRAD --help` lists, and in it every option that `TAPEGRAD CMD --help` shows;
# and groff reads it without a warning. Exits 1 with what is missing.
set -eu
bin=$1
page=$2
fail=0
miss() {
    echo "man_page: $*" >&2
    fail=1
}
[ -s "$page" ] || {
    echo "man_page: $page is missing or empty" >&2
    exit 1
}
# The page's text with roff's escaped dashes plain again.
text=$(sed 's/\\-/-/g; s/\\e/\\/g' "$page")
version=$("$bin" --version | sed -n '1s/^tapegrad //p')
printf '%s\n' "$text" | grep -q "^\.TH TAPEGRAD 1 .*\"tapegrad $version\"" ||
    miss "the page is not for tapegrad $version"
commands=$("$bin" --help | awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
[ -n "$commands" ] || miss "tapegrad --help lists no commands"
n=0
for cmd in $commands; do
    # this command's section: from its .SS line to the next section
    section=$(printf '%s\n' "$text" |
        awk -v h=".SS \"tapegrad $cmd\"" '$0 == h { on = 1; next } on && /^\.S[SH] / { exit } on')
    [ -n "$section" ] || { miss "no section for 'tapegrad $cmd'"; continue; }
    opts=$("$bin" "$cmd" --help | sed -n 's/^  \(-[^ ]*\(, -[^ ]*\)*\).*/\1/p' | tr ',' '\n' |
        sed 's/^ *//; s/[= ].*//')
    for o in $opts; do
        n=$((n + 1))
        printf '%s\n' "$section" | grep -q -e "^\.B $o\b" -e "^\.B .*[ ,]$o\b" ||
            miss "'tapegrad $cmd' option $o is not in the page"
    done
done
if command -v groff >/dev/null 2>&1; then
    warnings=$(groff -man -ww -z "$page" 2>&1 || true)
    [ -z "$warnings" ] || miss "groff warns: $warnings"
fi
[ $fail -eq 0 ] || exit 1
echo "man_page: ok: $(echo $commands | wc -w) commands, $n options, tapegrad $version"
