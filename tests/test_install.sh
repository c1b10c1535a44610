#!/bin/bash
# meson install of this build into a temporary DESTDIR: every file meson
# says it installs is there; the installed tfq runs; a man page per command
# of cli/tfq.c's table, each rendering without a warning (groff) and naming
# the options the binary's help names; the bash completion offers those
# commands and options (run in bash), the zsh one parses; the installed
# units pass systemd-analyze verify (when it exists) with the installed
# paths in them.  Prints "ok: ..." per check and the installed files.
# Usage: test_install.sh MESON BUILD-DIR SOURCE-DIR files|units
# 'files' checks all but the units' verify; 'units' the units, and exits 77
# (skipped) without systemd-analyze or with -Dsystemdsystemunitdir=no.
set -u

usage="usage: test_install.sh MESON BUILD-DIR SOURCE-DIR files|units"
MESON=${1:?$usage}
BUILD=$(realpath "${2:?$usage}")
SRC=$(realpath "${3:?$usage}")
CASE=${4:?$usage}
case "$CASE" in files | units) ;; *) echo "$usage" >&2; exit 2 ;; esac
DIR=$(mktemp -d "${TMPDIR:-/tmp}/tfq-install-XXXXXX")
D="$DIR/dest"
trap 'rm -rf "$DIR"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

# option NAME: the build's value of meson option NAME.
option() {
    "$MESON" introspect "$BUILD" --buildoptions |
        python3 -c 'import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}
# under DIR: DIR made absolute under the prefix, as meson does.
under() { case "$1" in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }

"$MESON" install -C "$BUILD" --destdir "$D" --no-rebuild --quiet >"$DIR/install.log" 2>&1 ||
    fail "meson install -C $BUILD --destdir $D: $(tail -20 "$DIR/install.log")"
echo "installed files:"
(cd "$D" && find . -type f | sort | sed 's|^\.|  |')

# Every file meson lists as installed is there.
"$MESON" introspect "$BUILD" --installed >"$DIR/installed.json" || fail "meson introspect --installed"
n=0
while IFS= read -r f; do
    [ -f "$D$f" ] || fail "meson lists $f as installed; $D$f is missing"
    n=$((n + 1))
done < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1])).values()))' "$DIR/installed.json")
ok "all $n files meson lists are installed"

PREFIX=$(option prefix)
UNITDIR=$(option systemdsystemunitdir)
if [ "$CASE" = units ]; then
    if ! command -v systemd-analyze >/dev/null; then
        echo "no systemd-analyze: the installed units are not verified"
        exit 77
    fi
    if [ "$UNITDIR" = no ]; then
        echo "-Dsystemdsystemunitdir=no: no units installed"
        exit 77
    fi
fi
BINDIR=$(under "$(option bindir)")
SYSCONFDIR=$(under "$(option sysconfdir)")
DATADIR=$(under "$(option datadir)")
MANDIR=$(under "$(option mandir)")
TFQ="$D$BINDIR/tfq"
[ -x "$TFQ" ] || fail "no executable $TFQ"
"$TFQ" --version >/dev/null || fail "the installed $TFQ --version failed"

if [ "$CASE" = files ]; then
# The commands: the binary's, which must be cli/tfq.c's table.
mapfile -t CMDS < <("$TFQ" --help | sed -n '/^commands:$/,/^$/s/^  \([a-z][a-z0-9-]*\)  .*/\1/p')
mapfile -t TABLE < <(python3 "$SRC/tools/tfq_help.py" --commands "$SRC/cli/tfq.c")
[ "${#CMDS[@]}" -gt 0 ] || fail "tfq --help lists no commands"
[ "${CMDS[*]}" = "${TABLE[*]}" ] || fail "tfq --help lists '${CMDS[*]}', cli/tfq.c's table '${TABLE[*]}'"
ok "tfq --help lists the ${#CMDS[@]} commands of cli/tfq.c's table"

# opts_of CMD: the long options on the usage lines and option lines of
# `tfq CMD --help`, one a line.
opts_of() {
    "$TFQ" "$1" --help |
        awk '/^usage: / || /^       tfq / || /^[ \t]+(-[a-zA-Z], )?--[a-z]/' |
        sed 's/^[ \t]*-[a-zA-Z], //' |
        awk '{ if ($0 ~ /^[ \t]+--/) { print $1 } else { print } }' |
        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# ---------------------------------------------------------------- man pages

M="$D$MANDIR/man1"
for page in tfq "${CMDS[@]/#/tfq-}"; do
    [ -f "$M/$page.1" ] || fail "no man page $MANDIR/man1/$page.1"
    grep -q '^\.TH ' "$M/$page.1" || fail "$page.1: no .TH"
    for s in NAME SYNOPSIS DESCRIPTION; do
        grep -q "^\.SH $s\$" "$M/$page.1" || fail "$page.1: no .SH $s"
    done
done
for c in "${CMDS[@]}"; do
    for o in $(opts_of "$c"); do
        grep -qF -- "${o//-/\\-}" "$M/tfq-$c.1" || fail "tfq-$c.1 does not name $o, which tfq $c --help names"
    done
done
if command -v groff >/dev/null; then
    for f in "$M"/*.1; do
        out=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
        [ -z "$out" ] || fail "groff warns about $(basename "$f"): $out"
    done
    txt=$(groff -man -Tutf8 -P-cbou "$M/tfq-worker.1" 2>/dev/null)
    echo "$txt" | grep -q 'tfq worker \[--connect ADDR\]' || fail "tfq-worker.1 renders without its synopsis: $txt"
    echo "$txt" | grep -q -- '--exit-when-idle' || fail "tfq-worker.1 renders without --exit-when-idle"
    ok "man pages: tfq(1) and ${#CMDS[@]} tfq-COMMAND(1), each naming its options, rendered by groff without a warning"
else
    echo "note: no groff; the man pages are checked as text"
    ok "man pages: tfq(1) and ${#CMDS[@]} tfq-COMMAND(1), each naming its options"
fi

# ---------------------------------------------------------------- completion

BASHC=$(find "$D" -path '*/bash-completion/completions/tfq' -type f)
ZSHC=$(find "$D" -path '*/zsh/*/_tfq' -type f)
if [ "$(option bashcompletiondir)" = no ] || [ "$(option zshcompletiondir)" = no ]; then
    echo "note: -Dbashcompletiondir=no or -Dzshcompletiondir=no: the completions are not checked"
    echo "all install checks passed (files)"
    exit 0
fi
[ -n "$BASHC" ] || fail "no bash-completion/completions/tfq installed"
[ -n "$ZSHC" ] || fail "no zsh completion _tfq installed"
[ "$BASHC" = "$D$DATADIR/bash-completion/completions/tfq" ] || [ -n "$(option bashcompletiondir)" ] ||
    fail "bash completion at $BASHC, not DATADIR/bash-completion/completions"
case "$PREFIX" in
/usr) want=vendor-completions ;;
*) want=site-functions ;;
esac
[ "$ZSHC" = "$D$DATADIR/zsh/$want/_tfq" ] || [ -n "$(option zshcompletiondir)" ] ||
    fail "zsh completion at $ZSHC, not DATADIR/zsh/$want (where zsh looks under $PREFIX)"
bash -n "$BASHC" || fail "bash -n $BASHC"
# complete WORDS...: what the bash completion offers for the last word.
complete_words() {
    # shellcheck disable=SC2034 # read by _tfq
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tfq; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$BASHC" "$@"
}
got=$(complete_words tfq "" | tr '\n' ' ')
[ "$got" = "${CMDS[*]} " ] || fail "bash completes 'tfq ' to '$got', not '${CMDS[*]}'"
for c in "${CMDS[@]}"; do
    got=$(complete_words tfq "$c" --)
    for o in $(opts_of "$c") --curve-key --server-key; do
        echo "$got" | grep -qx -- "$o" || fail "bash completes 'tfq $c --' without $o"
    done
done
[ "$(complete_words tfq checkpoint "" | tr '\n' ' ')" = "get export import " ] ||
    fail "bash does not complete 'tfq checkpoint ' to get, export and import"
mkdir "$DIR/cwd" && touch "$DIR/cwd/grid.yaml" && mkdir "$DIR/cwd/statedir"
got=$(cd "$DIR/cwd" && complete_words tfq coordinator --state "")
[ "$got" = statedir ] || fail "bash completes 'tfq coordinator --state ' to '$got', not the directory statedir"
got=$(cd "$DIR/cwd" && complete_words tfq worker --threads "")
[ -z "$got" ] || fail "bash completes the number of --threads to '$got'"
ok "bash completion: the commands, each one's options, checkpoint get, directories for DIR"
if command -v zsh >/dev/null; then
    zsh -n "$ZSHC" || fail "zsh -n $ZSHC"
    head -1 "$ZSHC" | grep -qx '#compdef tfq' || fail "$ZSHC does not start with #compdef tfq"
    for c in "${CMDS[@]}"; do
        grep -q "^    $c)\$" "$ZSHC" || fail "$ZSHC has no case for $c"
        for o in $(opts_of "$c"); do
            grep -qF -- "'${o}[" "$ZSHC" || fail "$ZSHC: $c without $o"
        done
    done
    ok "zsh completion parses (zsh -n) and holds every command and option"
else
    echo "note: no zsh; _tfq is not parsed"
fi

echo "all install checks passed (files)"
exit 0
fi

# ---------------------------------------------------------------- systemd

COORD=$(find "$D" -name tfq-coordinator.service -type f)
WORKER=$(find "$D" -name 'tfq-worker@.service' -type f)
{ [ -n "$COORD" ] && [ -n "$WORKER" ]; } || fail "the systemd units are not installed"
case "$COORD" in */systemd/system/tfq-coordinator.service) ;; *) fail "coordinator unit at $COORD, not in a systemd/system directory" ;; esac
for u in "$COORD" "$WORKER"; do
    grep -q "^ExecStart=$BINDIR/tfq " "$u" || fail "$(basename "$u"): ExecStart is not $BINDIR/tfq"
    grep -qx -- "EnvironmentFile=-\{0,1\}$SYSCONFDIR/tfq/tfq.env" "$u" ||
        fail "$(basename "$u"): EnvironmentFile is not $SYSCONFDIR/tfq/tfq.env"
    grep -n '@[a-z_]*@' "$u" && fail "$(basename "$u"): a template variable left"
done
EXAMPLE="$D$DATADIR/doc/tfq/examples/tfq.env"
[ -f "$EXAMPLE" ] || fail "no example $DATADIR/doc/tfq/examples/tfq.env"
grep -q "^#   install .* $DATADIR/doc/tfq/examples/tfq.env $SYSCONFDIR/tfq/tfq.env\$" "$EXAMPLE" ||
    fail "the example tfq.env does not say to copy it from where it is to $SYSCONFDIR/tfq/tfq.env"
ok "units: ExecStart $BINDIR/tfq, EnvironmentFile $SYSCONFDIR/tfq/tfq.env, the example in $DATADIR/doc/tfq/examples"
# verify wants the ExecStart binary to exist: the installed one.
mkdir "$DIR/units"
sed "s|^ExecStart=$BINDIR/tfq |ExecStart=$TFQ |" "$COORD" >"$DIR/units/tfq-coordinator.service"
sed "s|^ExecStart=$BINDIR/tfq |ExecStart=$TFQ |" "$WORKER" >"$DIR/units/tfq-worker@1.service"
out=$(cd "$DIR/units" && systemd-analyze verify ./tfq-coordinator.service ./tfq-worker@1.service 2>&1) ||
    fail "systemd-analyze verify of the installed units: $out"
if echo "$out" | grep 'tfq-'; then
    fail "systemd-analyze verify warns about the installed units"
fi
ok "systemd-analyze verify: the installed units"
echo "all install checks passed (units)"
