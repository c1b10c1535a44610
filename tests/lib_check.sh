# Shared by the CLI-style shell tests (sourced): "ok: ..." / "FAIL: ..."
# lines, a failure count, and expect.  The sourcing script sets TFQ and TMP
# and exits 1 when $failures > 0.
failures=0

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
