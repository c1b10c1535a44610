# Shared by the CLI-style shell tests (sourced): "ok: ..." / "FAIL: ..."
# lines, a failure count, expect and check_tmp.  The sourcing script sets
# TFQ and TMP (or calls check_tmp) and exits 1 when $failures > 0.
failures=0

# check_tmp NAME: a new directory TMP (also DIR, the state's parent for
# lib_queue.sh), PIDS to kill at exit, and the cleanup that does so and
# removes TMP.
check_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfq-$1-XXXXXX")
    DIR=$TMP
    PIDS=()
    cleanup() {
        for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$TMP"
    }
    trap cleanup EXIT
}

ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# expect NAME STATUS [PATTERN] -- ARGS...: runs tfq ARGS, checks its exit
# status and that PATTERN (if given) occurs in its stderr.  Leaves the output
# in $TMP/out and $TMP/err.
expect() {
    local name=$1 want=$2 pattern=
    shift 2
    if [ "$1" != "--" ]; then
        pattern=$1
        shift
    fi
    shift
    "$TFQ" "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        fail "$name: exit status $got, expected $want; stderr:"
        sed 's/^/    /' "$TMP/err"
        return 1
    fi
    if [ -n "$pattern" ] && ! grep -q -- "$pattern" "$TMP/err"; then
        fail "$name: stderr lacks '$pattern':"
        sed 's/^/    /' "$TMP/err"
        return 1
    fi
    ok "$name"
}
