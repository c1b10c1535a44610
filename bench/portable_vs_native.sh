#!/bin/bash
# The portable build (default options: x86-64 baseline, kernels picked at
# run time) against a -march=native build of the same tree, on this machine
# and in one run: the two binaries' `tfq bench` runs alternate, ROUNDS
# each, so both see the same machine, and the medians are compared.
#
# Usage: bench/portable_vs_native.sh [--rounds N] [--nets "reference wide"]
#                                    [--threads N]
# Builds build-bench-portable and build-bench-native (release) when they
# are missing.  Prints the CPU, each build's median images/s and sgemm
# GFLOP/s per net, and portable / native.
set -u
cd "$(dirname "$0")/.."

ROUNDS=5
NETS="reference wide"
THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --nets) NETS=${2:?--nets needs a list}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "portable_vs_native.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
case "$ROUNDS$THREADS" in
*[!0-9]*|'') echo "portable_vs_native.sh: --rounds and --threads take whole numbers" >&2; exit 2 ;;
esac

for b in portable native; do
    dir=build-bench-$b
    native=false
    [ "$b" = native ] && native=true
    if [ ! -x "$dir/cli/tfq" ]; then
        echo "building $dir (-Dnative=$native)" >&2
        { meson setup "$dir" -Dnative=$native >/dev/null && ninja -C "$dir" >/dev/null; } ||
            { echo "portable_vs_native.sh: building $dir failed" >&2; exit 1; }
    fi
done

model=$(lscpu | sed -n 's/^Model name: *//p')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=""
for f in avx2 avx512f; do
    case " $flags " in *" $f "*) isa="$isa $f" ;; esac
done
echo "CPU: $model (flags:${isa:- neither avx2 nor avx512f}); $THREADS thread(s), $ROUNDS rounds"

# field JSON KEY: one number from tfq bench --json.
field() {
    python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT

printf '%-10s %-8s %12s %12s %8s\n' net build "images/s" "sgemm GF/s" kernels
for net in $NETS; do
    : >"$TMPD"/portable
    : >"$TMPD"/native
    for ((r = 0; r < ROUNDS; r++)); do
        for b in portable native; do
            out=$(build-bench-$b/cli/tfq bench --net "$net" --threads "$THREADS" \
                  --repeats 3 --steps 20 --json) ||
                { echo "portable_vs_native.sh: tfq bench failed ($b)" >&2; exit 1; }
            echo "$(field "$out" train_images_per_s) $(field "$out" sgemm_gflops) $(field "$out" kernels)" >>"$TMPD"/$b
        done
    done
    for b in portable native; do
        ips=$(cut -d' ' -f1 "$TMPD"/$b | median)
        sg=$(cut -d' ' -f2 "$TMPD"/$b | median)
        printf '%-10s %-8s %12.1f %12.1f %8s\n' "$net" "$b" "$ips" "$sg" "$(head -1 "$TMPD"/$b | cut -d' ' -f3)"
        eval "ips_$b=$ips"
    done
    awk -v p="$ips_portable" -v n="$ips_native" 'BEGIN { printf "%-10s portable / native = %.3f\n", "", p / n }'
done
