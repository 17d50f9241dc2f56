#!/bin/sh
# tools/check_api_docs.sh DOXYFILE GAPS: builds the API reference with Doxygen (DOXYFILE, made
# by CMake from docs/Doxyfile.in; HTML and XML next to it) and checks it. Fails (exit 1) when:
#   - a public function, type (typedef, struct, enum) or enum value has no comment: Doxygen's
#     "is not documented" warnings for the first, its XML for enum values (an enum value is
#     documented by a comment after it, or one on the line before it);
#   - a comment mentions a tg_/TG_ name that the headers do not declare (a renamed or removed
#     function still named in prose), except the build options and environment variables
#     listed in NOT_API below; names followed by '*' (tg_dist_*) are patterns, not names;
#   - Doxygen says anything else (markup it could not read: the reference would be garbled);
#   - tapegrad.h does not include a module header, or its opening list does not name it.
# GAPS (docs/api-gaps.txt) lists the names undocumented when this check was introduced, one a
# line; they are let through, and a listed name that is documented now (or gone) fails too, so
# the list only shrinks: delete its line when you document the name. Undocumented struct
# fields and macros are not checked (the comment before a struct or macro usually covers
# them). Plain sh, sed and awk. Used by `cmake --build BUILD --target doc` and the
# api_reference test.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 DOXYFILE GAPS" >&2
    exit 2
fi
doxyfile=$1
gaps=$2
# Build options and environment variables the headers mention: not C names.
NOT_API="TG_NUM_THREADS TG_CSV_MAX_BYTES TG_GRAPHVIZ TG_MPI TG_BLAS TG_STATIC_DEFINE TG_BUILDING"

if ! command -v doxygen >/dev/null 2>&1; then
    echo "check_api_docs: doxygen is not installed (Debian: apt-get install doxygen;" \
        "tools/setup.sh installs it)" >&2
    exit 1
fi
val() { sed -n "s/^$1 *= *//p" "$doxyfile" | head -n 1 | sed 's/^"//; s/"$//'; }
outdir=$(val OUTPUT_DIRECTORY)
inputs=$(val INPUT)
log="$outdir/warnings.txt"
rm -rf "$outdir/html" "$outdir/xml"
rm -f "$log"
doxygen "$doxyfile" >"$outdir/doxygen.out" 2>&1 || {
    cat "$outdir/doxygen.out" >&2
    echo "check_api_docs: doxygen failed" >&2
    exit 1
}
headers=$(for i in $inputs; do if [ -d "$i" ]; then ls "$i"/*.h; else echo "$i"; fi; done)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tg-apidocs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0

# 1. Undocumented functions and types (Doxygen's warnings), and every other warning.
: >"$tmp/undoc"
: >"$tmp/other"
touch "$log"
awk -v undoc="$tmp/undoc" -v other="$tmp/other" -v declared="$tmp/declared" '
/ is not documented\.$/ {
    t = $0; sub(/^.*warning: /, "", t); sub(/^[^:]*:[0-9]+: /, "", t)
    if (t ~ /^Compound /) { split(t, w, " "); print w[2] "\tstruct\t" $1 >> undoc; next }
    if (t ~ /^Member /) {
        name = t; sub(/^Member /, "", name); sub(/[ (].*/, "", name)
        kind = t; sub(/.*\) \(|^Member [^ ]* \(/, "", kind); sub(/\).*/, "", kind)
        print name >> declared
        if (kind == "function" || kind == "typedef" || kind == "enumeration")
            print name "\t" kind "\t" $1 >> undoc
        next
    }
}
NF { print >> other }
' "$log"
if [ -s "$tmp/other" ]; then
    echo "check_api_docs: Doxygen could not read some comments as written:" >&2
    cat "$tmp/other" >&2
    status=1
fi

# 2. Enum values without a comment: in the XML, an <enumvalue> whose descriptions are empty.
for x in "$outdir"/xml/*.xml; do
    awk '
    /<enumvalue / { inv = 1; name = ""; doc = ""; next }
    inv && /<name>/ { name = $0; sub(/.*<name>/, "", name); sub(/<\/name>.*/, "", name); next }
    inv && /<initializer>/ { next }
    inv && /<\/enumvalue>/ {
        gsub(/<[^>]*>/, "", doc); gsub(/[ \t\r\n]/, "", doc)
        f = FILENAME; sub(/.*\//, "", f); sub(/_8h\.xml$/, ".h", f)
        if (doc == "") print name "\tenum value\t" f
        inv = 0; next
    }
    inv { doc = doc $0 }
    ' "$x"
done | sort -u -k1,1 >>"$tmp/undoc"

# Compare with the known gaps.
sed 's/#.*//; s/[ \t]*$//; /^$/d' "$gaps" | sort -u >"$tmp/gaps"
sort -u -k1,1 "$tmp/undoc" >"$tmp/undoc.sorted"
cut -f1 "$tmp/undoc.sorted" | sort -u >"$tmp/undoc.names"
new=$(comm -23 "$tmp/undoc.names" "$tmp/gaps")
if [ -n "$new" ]; then
    echo "check_api_docs: undocumented public names (add a comment before each in its" \
        "header, or after an enum value):" >&2
    for n in $new; do
        awk -F '\t' -v n="$n" '$1 == n { print "  " $1 " (" $2 ") " $3 }' \
            "$tmp/undoc.sorted" | sed 's/:$//' >&2
    done
    status=1
fi
fixed=$(comm -13 "$tmp/undoc.names" "$tmp/gaps")
if [ -n "$fixed" ]; then
    echo "check_api_docs: documented now (or gone), delete from $gaps:" $fixed >&2
    status=1
fi

# 3. Names mentioned in comments that the headers do not declare. Declared: every name in the
# XML (documented entities), every name Doxygen called undocumented, plus NOT_API.
{
    cat "$outdir"/xml/*.xml | sed -n 's/.*<\(name\|compoundname\)>\([^<]*\)<.*/\2/p'
    cut -f1 "$tmp/undoc.sorted"
    [ -f "$tmp/declared" ] && cat "$tmp/declared"
    for n in $NOT_API; do echo "$n"; done
} | sort -u >"$tmp/known"
# shellcheck disable=SC2086 # the header list is meant to be split
awk '
# Comment text only, then every tg_/TG_ word that is not a pattern (tg_dist_*, tg_<module>).
{
    t = $0; c = ""
    while (t != "") {
        if (inc) {
            p = index(t, "*/")
            if (!p) { c = c " " t; t = "" } else { c = c " " substr(t, 1, p - 1); t = substr(t, p + 2); inc = 0 }
        } else {
            p = index(t, "/*")
            if (!p) t = ""; else { t = substr(t, p + 2); inc = 1 }
        }
    }
    while (match(c, /(tg|TG)_[A-Za-z0-9_]*/)) {
        w = substr(c, RSTART, RLENGTH); nxt = substr(c, RSTART + RLENGTH, 1)
        c = substr(c, RSTART + RLENGTH)
        if (w ~ /_$/ || nxt == "*" || nxt == "<") continue
        print w "\t" FILENAME ":" FNR
    }
}
' $headers | sort -k1,1 >"$tmp/mentioned"
unknown=$(cut -f1 "$tmp/mentioned" | sort -u | comm -23 - "$tmp/known")
if [ -n "$unknown" ]; then
    echo "check_api_docs: comments name things the headers do not declare:" >&2
    for n in $unknown; do
        awk -F '\t' -v n="$n" '$1 == n { print "  " $1 " at " $2 }' "$tmp/mentioned" >&2
    done
    status=1
fi

# 4. The umbrella header (tapegrad.h) includes every module header and names each in its
# opening list ("tapegrad/NAME.h  what it holds"), which tells users which one to include.
umbrella=$(printf '%s\n' $headers | grep '/tapegrad\.h$' | head -n 1)
if [ -n "$umbrella" ]; then
    for h in $headers; do
        case "$h" in */tapegrad/*.h) ;; *) continue ;; esac
        m="tapegrad/${h##*/}"
        grep -q "^#include \"$m\"" "$umbrella" ||
            { echo "check_api_docs: $umbrella does not include $m" >&2; status=1; }
        grep -Eq "^ \* +$m +" "$umbrella" ||
            { echo "check_api_docs: $umbrella's list of module headers lacks $m" >&2; status=1; }
    done
fi

if [ $status -eq 0 ]; then
    echo "check_api_docs: ok: $(grep -c . "$tmp/known") names, no undocumented public name but" \
        "the $(grep -c . "$tmp/gaps" || true) known gaps; reference: $outdir/html/index.html"
fi
exit $status
