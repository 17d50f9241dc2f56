#!/usr/bin/env bash
# tools/check_layers.sh [--objects OBJ...]: checks that the modules under src/ depend on each
# other in one direction. Run by CTest as the test check_layers (tests/CMakeLists.txt).
#
#   includes: every #include in src/MODULE/*.{c,h} against the table below: a private header
#             of a module above MODULE, or one of a module below it that is not on MODULE's
#             rows, fails (file, line, rule). So does any include of the old src/internal.h,
#             or one with "..".
#   calls:    with --objects (the library's object files, as src/MODULE/FILE.c.o), every
#             public function (tg_*, no "__") a module's objects call must be defined by the
#             same module or one listed before it: what the includes cannot see, since every
#             module includes tapegrad.h. (Internal tg_MODULE__ functions need the private
#             header that declares them, so the include rules already cover them.)
#
# Exits 0 when everything holds, 1 listing every break, 2 on a usage error.
set -euo pipefail

# ---- the rules -----------------------------------------------------------------------------
# The modules, lowest first (a module's first row places it). A file under src/MODULE/ may
# include its own module's headers ("MODULE/x.h", or "x.h" beside it), the public headers
# (tapegrad.h, tapegrad/*.h) and system headers; of the other modules' private headers only
# those on MODULE's rows, each of a module listed before MODULE ("core/*": any of core's). A
# row for MODULE/FILE adds headers for that one file. Text after # says why a row exists.
# The modules above ops use the public API; their rows name the narrow helpers they need.
RULES='
core             -
kernels          core/*
tensor           core/*
tape             tensor/* core/*
ops              tape/* tensor/* kernels/* core/*
diff             core/core.h
diff             tape/grad_inputs.h      # tg_jacobian refuses inputs as tg_grad does
diff             tape/captured.h         # tg_jacobian and tg_hessian pass as tg_grad does
check            core/core.h
optim            core/core.h
optim            core/pool.h             # the update loops run on the thread pool
data             core/core.h
io               core/core.h
nn               core/core.h
nn               io/bytes.h io/files.h   # model files: byte encoding, frame, load and save
nn               tape/scratch.h          # onehot builds its constant in the arena of the tape
nn               tensor/borrow.h         # the gradients of a model are one block it owns
nn/model.c       core/pool.h             # gradients zeroed in the ranges of the optimizer step
expr             core/core.h
expr             tape/scratch.h          # tgx literals are built in the arena of the tape
train            core/core.h
train            io/bytes.h io/files.h   # checkpoints: byte encoding, frame, load and save
dist             core/core.h
dist             train/train_internal.h # the settings record of a trainer, compared across ranks
minimize         core/core.h             # solvers on the public API (tg_grad, tg_hessian)
'

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

objects=()
if [ $# -gt 0 ]; then
    case "$1" in
        --objects)
            shift
            # CMake may hand the list over as one argument with ';' between the files.
            for arg in "$@"; do
                IFS=';' read -r -a parts <<<"$arg"
                objects+=("${parts[@]}")
            done
            if [ ${#objects[@]} -eq 0 ]; then
                echo "check_layers: --objects needs object files" >&2
                exit 2
            fi
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "check_layers: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export TG_LAYER_RULES="$RULES"

# The rule table, parsed the same way by both checks: order[1..n] the modules, rank[m] the
# position of m, allow[key, header] the private headers a module (or one file) may include.
read -r -d '' PARSE_RULES <<'AWK' || true
function parse_rules(    lines, n, i, f, nf, key, mod, k, hdr, hmod) {
    n = split(ENVIRON["TG_LAYER_RULES"], lines, "\n")
    for (i = 1; i <= n; i++) {
        sub(/#.*/, "", lines[i])
        nf = split(lines[i], f, " ")
        if (nf == 0)
            continue
        key = f[1]
        mod = key
        sub(/\/.*/, "", mod)
        if (!(mod in rank)) {
            if (key != mod) {
                table_error("row " key ": module " mod " has no row of its own before it")
                continue
            }
            rank[mod] = ++n_mods
            order[n_mods] = mod
            order_text = order_text (n_mods > 1 ? " " : "") mod
        }
        if (key != mod)
            file_rule[key] = 1
        for (k = 2; k <= nf; k++) {
            hdr = f[k]
            if (hdr == "-")
                continue
            hmod = hdr
            sub(/\/.*/, "", hmod)
            if (!(hmod in rank) || rank[hmod] >= rank[mod])
                table_error("row " key ": " hdr " is not of a module listed before " mod)
            allow[key, hdr] = 1
            allow_text[key] = allow_text[key] (allow_text[key] == "" ? "" : " ") hdr
        }
    }
}
function table_error(msg) {
    if (quiet_table)
        return # the includes check has said it
    print "tools/check_layers.sh: rule table: " msg
    errors++
}
AWK

# ---- includes --------------------------------------------------------------------------------
# Input: a listing of every header under src/ and include/ (so an include can be resolved),
# then the files to check.
read -r -d '' CHECK_INCLUDES <<'AWK' || true
BEGIN {
    parse_rules()
    listing = ARGV[1]
}
FILENAME == listing {
    known[$0] = 1
    if ($0 ~ /^src\/[^\/]+\//) {
        m = $0
        sub(/^src\//, "", m)
        sub(/\/.*/, "", m)
        module_dir[m] = 1
    }
    next
}
FNR == 1 {
    # Headers and files named in the table must exist, so that a rename cannot leave a rule
    # pointing nowhere (files are checked at the end, once all are seen).
    if (!checked_table) {
        checked_table = 1
        for (key in allow_text) {
            n = split(allow_text[key], hs, " ")
            for (i = 1; i <= n; i++)
                if (hs[i] !~ /\/\*$/ && !(("src/" hs[i]) in known))
                    table_error("row " key ": src/" hs[i] " does not exist")
        }
    }
    n_files++
    path = FILENAME
    rel = path
    sub(/^src\//, "", rel)
    mod = rel
    dir = ""
    if (rel !~ /\//) {
        report(path, 0, "a file directly under src/ belongs to no module: put it in src/MODULE/")
        mod = ""
    } else {
        sub(/\/.*/, "", mod)
        dir = path
        sub(/\/[^\/]*$/, "", dir)
        if (!(mod in rank)) {
            report(path, 0, "module " mod " is not in the rule table of tools/check_layers.sh")
            mod = ""
        }
    }
    seen_file[rel] = 1
}
/^[ \t]*#[ \t]*include[ \t]*[<"]/ {
    line = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
    quoted = substr(line, 1, 1) == "\""
    name = substr(line, 2)
    sub(/[>"].*/, "", name)
    n_includes++
    check_include(name, quoted)
}
function check_include(name, quoted,    base, hmod) {
    base = name
    sub(/.*\//, "", base)
    if (base == "internal.h") {
        report(FILENAME, FNR, "#include \"" name "\": src/internal.h is gone; include the " \
               "private header of the module that owns what you need (core/core.h, ...)")
        return
    }
    if (name ~ /(^|\/)\.\.(\/|$)/ || name ~ /^\//) {
        report(FILENAME, FNR, "#include \"" name "\": name private headers from src/ " \
               "(MODULE/x.h), not by a relative path")
        return
    }
    if (mod == "")
        return
    if (name == "tapegrad.h" || name ~ /^tapegrad\//)
        return # the public API
    if (name !~ /\//) {
        if (quoted && ((dir "/" name) in known))
            return # beside the file: its own module's
        return # a system header
    }
    hmod = name
    sub(/\/.*/, "", hmod)
    if (!(hmod in module_dir) && !(hmod in rank))
        return # a system header in a directory (sys/stat.h, graphviz/gvc.h)
    if (hmod == mod)
        return
    if (allow[mod, name] || allow[mod, hmod "/*"] || allow[rel, name] || allow[rel, hmod "/*"])
        return
    if (!(hmod in rank))
        report(FILENAME, FNR, "#include \"" name "\": module " hmod \
               " is not in the rule table")
    else if (rank[hmod] >= rank[mod])
        report(FILENAME, FNR, "#include \"" name "\": " mod " may not include a private " \
               "header of " hmod ", which is not below it (modules, lowest first: " \
               order_text ")")
    else
        report(FILENAME, FNR, "#include \"" name "\": of the modules below it, " mod \
               " may include only " allowed_for(mod, rel) " (the rule table in " \
               "tools/check_layers.sh)")
}
function allowed_for(mod, rel,    s) {
    s = allow_text[mod]
    if (rel in allow_text)
        s = s (s == "" ? "" : " ") allow_text[rel] " (this file)"
    return s == "" ? "no private header" : s
}
function report(file, line, msg) {
    print file (line ? ":" line : "") ": " msg
    errors++
}
END {
    for (key in file_rule)
        if (!(key in seen_file))
            table_error("row " key ": src/" key " does not exist")
    if (errors) {
        print "check_layers: " errors " problem(s) in the includes of " n_files " files"
        exit 1
    }
    print "check_layers: includes: " n_files " files, " n_includes " includes: every module " \
          "includes only what it may (" order_text ")"
}
AWK

listing=$(mktemp)
trap 'rm -f "$listing"' EXIT
find src include -type f -name '*.h' | LC_ALL=C sort >"$listing"
mapfile -t files < <(find src -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
status=0
awk "$PARSE_RULES
$CHECK_INCLUDES" "$listing" "${files[@]}" || status=1

# ---- calls -------------------------------------------------------------------------------------
# Input: `nm` lines per object, each prefixed with its module and source file.
read -r -d '' CHECK_CALLS <<'AWK' || true
BEGIN {
    parse_rules()
}
# "MODULE FILE D SYMBOL" (defined) or "MODULE FILE U SYMBOL" (undefined)
$3 == "D" {
    if (!($1 in rank)) {
        print $2 ": module " $1 " is not in the rule table of tools/check_layers.sh"
        errors++
    }
    owner[$4] = $1
    next
}
$3 == "U" && $4 ~ /^tg_/ && $4 !~ /__/ {
    n_calls++
    call_mod[n_calls] = $1
    call_file[n_calls] = $2
    call_sym[n_calls] = $4
}
END {
    for (i = 1; i <= n_calls; i++) {
        m = call_mod[i]
        s = call_sym[i]
        if (!(s in owner) || !(m in rank) || !(owner[s] in rank))
            continue
        if (rank[owner[s]] > rank[m]) {
            k = call_file[i] SUBSEP owner[s]
            if (!(k in told)) {
                told[k] = 1
                first[k] = s
                order_k[++n_told] = k
            }
            more[k] = more[k] + 1
        }
    }
    for (j = 1; j <= n_told; j++) {
        k = order_k[j]
        split(k, parts, SUBSEP)
        m = parts[1]
        sub(/^src\//, "", m)
        sub(/\/.*/, "", m)
        print parts[1] ": calls " first[k] (more[k] > 1 ? " and " (more[k] - 1) " more" : "") \
              " of " parts[2] ", which is above " m " (modules, lowest first: " order_text ")"
        errors++
    }
    if (errors) {
        print "check_layers: " errors " problem(s) in the calls between modules"
        exit 1
    }
    print "check_layers: calls: " n_objects " objects refer to " n_calls " public functions " \
          "(counted once per object), each of their own module or one below"
}
AWK

if [ ${#objects[@]} -gt 0 ]; then
    nm_tool=${NM:-nm}
    if ! command -v "$nm_tool" >/dev/null 2>&1; then
        echo "check_layers: --objects needs nm (set NM to another one)" >&2
        exit 2
    fi
    symbols=$(mktemp)
    trap 'rm -f "$listing" "$symbols"' EXIT
    for obj in "${objects[@]}"; do
        # .../src/MODULE/FILE.c.o (CMake's object path mirrors the source tree)
        case "$obj" in
            */src/*/*.o) ;;
            *)
                echo "check_layers: $obj: not an object under src/MODULE/" >&2
                exit 2
                ;;
        esac
        src=src/${obj##*/src/}
        src=${src%.o}
        module=${src#src/}
        module=${module%%/*}
        # Defined: global text, data, bss, read-only, common, and GNU ifunc (the SIMD clones'
        # dispatchers, TG_SIMD_CLONES); undefined: U.
        "$nm_tool" -P "$obj" | awk -v m="$module" -v f="$src" '
            $2 ~ /^[TDBRCVWGSi]$/ { print m, f, "D", $1 }
            $2 == "U" { print m, f, "U", $1 }'
    done >"$symbols"
    awk -v n_objects=${#objects[@]} -v quiet_table=1 "$PARSE_RULES
$CHECK_CALLS" "$symbols" || status=1
fi
exit $status
