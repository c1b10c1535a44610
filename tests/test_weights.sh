#!/bin/bash
# Weights out and in: tfq checkpoint export and import, read back by numpy
# alone (test_weights.py), and by PyTorch when it is installed.
# Usage: test_weights.sh PATH-TO-TFQ
#
# Trains two small nets on Fashion-MNIST (the reference net, and one with
# LRN and a 3x3 pool whose last window hangs over the edge), exports each,
# and checks that numpy's forward pass gets the same test images right as
# tfq did, to the last image; that export -> import -> export gives the
# same bytes and the same tensors bit for bit; that an imported checkpoint
# transfers as the original does; and that hostile and mismatched files
# are refused with a message naming what is wrong.  Exits 77 (skipped)
# without the data set or python3-numpy.
set -u

TFQ=${1:?usage: test_weights.sh PATH-TO-TFQ}
DATA=/usr/share/datasets/fashion-mnist
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib_check.sh"
check_tmp weights
PY=/usr/bin/python3
CHECK=("$PY" "$HERE/test_weights.py")
NTEST=1000
SHORT=(--limit-train 3000 --limit-test "$NTEST" --epochs 1 --quiet --json)

if [ ! -d "$DATA" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "note: $DATA or python3-numpy missing: skipping"
    exit 77
fi

expect "checkpoint --help names export and import" 0 -- checkpoint --help
grep -q "export JOB|--file CKPT" "$TMP/out" && grep -q "import FILE -o" "$TMP/out" ||
    fail "tfq checkpoint --help lacks export or import"
expect "export needs -o" 2 "-o FILE" -- checkpoint export --file x.ckpt
expect "export to another suffix" 1 "neither in .safetensors nor in .npz" -- \
    checkpoint export --file /dev/null -o "$TMP/x.bin"

# correct_of JSON: tfq's count of correct test images, from final_acc.
correct_of() {
    "$PY" -c 'import json, sys
print(round(json.load(open(sys.argv[1]))["final_acc"] * int(sys.argv[2])))' \
        "$1" "$NTEST"
}

# check_net NAME NET: trains NET, exports it both ways, and compares
# numpy's (and torch's) count of correct images with tfq's.
check_net() {
    local name=$1 net=$2
    expect "$name: train" 0 -- train "${SHORT[@]}" --net "$net" \
        --save "$TMP/$name.ckpt" || return 1
    cp "$TMP/out" "$TMP/$name.json"
    local want
    want=$(correct_of "$TMP/$name.json")
    expect "$name: export safetensors" 0 -- checkpoint export \
        --file "$TMP/$name.ckpt" -o "$TMP/$name.safetensors" || return 1
    expect "$name: export npz" 0 -- checkpoint export \
        --file "$TMP/$name.ckpt" -o "$TMP/$name.npz" || return 1
    for f in safetensors npz; do
        local got
        got=$("${CHECK[@]}" accuracy "$TMP/$name.$f" "$DATA" "$NTEST")
        [ "$got" = "$want" ] &&
            ok "$name: numpy on the .$f export gets $got of $NTEST right, as tfq" ||
            fail "$name: numpy on the .$f export gets '$got' of $NTEST right, tfq $want"
    done
    local torch rc
    torch=$("${CHECK[@]}" torch "$TMP/$name.safetensors" "$DATA" "$NTEST")
    rc=$?
    if [ "$rc" -eq 77 ]; then
        echo "note: python3-torch is not installed: the PyTorch check is skipped"
    elif [ "$rc" -ne 0 ] || [ "$torch" != "$want" ]; then
        fail "$name: PyTorch (load_state_dict strict) gets '$torch' right, tfq $want"
    else
        ok "$name: PyTorch (load_state_dict strict) gets $torch of $NTEST right, as tfq"
    fi
}

check_net reference reference
check_net lrn 'conv 12 5 pad=2; relu; lrn size=5 alpha=0.0001 beta=0.75; maxpool 3 stride=2; conv 16 3 pad=1; relu; maxpool 3 stride=2; fc 64; relu; dropout 0.5; fc classes'

# ---- the round trip ---------------------------------------------------------

R=$TMP/reference
expect "import" 0 -- checkpoint import "$R.safetensors" -o "$R-in.ckpt"
expect "export the import" 0 -- checkpoint export --file "$R-in.ckpt" \
    -o "$R-again.safetensors"
cmp -s "$R.safetensors" "$R-again.safetensors" &&
    ok "export -> import -> export gives the same bytes" ||
    fail "export -> import -> export changed the file"
n=$("${CHECK[@]}" ckpt-equal "$R.ckpt" "$R-in.ckpt") &&
    ok "the imported checkpoint's $n weight and bias tensors equal the original's bit for bit" ||
    fail "the imported checkpoint's tensors differ: $n"

# Transfer from the import and from the original: the same run.
for src in "$R.ckpt" "$R-in.ckpt"; do
    expect "train --init $(basename "$src") --copy 3" 0 -- train "${SHORT[@]}" \
        --classes 0,1,2,3,4 --init "$src" --copy 3 --freeze 3 || continue
    cp "$TMP/out" "$src.transfer.json"
done
if [ -f "$R.ckpt.transfer.json" ] && [ -f "$R-in.ckpt.transfer.json" ]; then
    "$PY" -c 'import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
sys.exit(a["test_acc"] != b["test_acc"] or a["train_loss"] != b["train_loss"])' \
        "$R.ckpt.transfer.json" "$R-in.ckpt.transfer.json" &&
        ok "transfer from the import gives the original's results" ||
        fail "transfer from the import differs: $(cat "$R"*.transfer.json)"
fi

# ---- refused files ----------------------------------------------------------

WIDE='conv 32 5 pad=2; relu; maxpool 2; conv 32 5 pad=2; relu; maxpool 2; conv 48 3 pad=1; relu; conv 48 3 pad=1; relu; conv 32 3 pad=1; relu; maxpool 2; fc 128; relu; dropout 0.5; fc 128; relu; dropout 0.5; fc classes'
expect "another net's shapes" 1 \
    "conv1.weight: the file has \[16,1,5,5\], the net wants \[32,1,5,5\]" -- \
    checkpoint import "$R.safetensors" --net "$WIDE" -o "$TMP/x.ckpt"
expect "other classes" 1 "fc8.weight: the file has \[10,128\], the net wants \[5,128\]" -- \
    checkpoint import "$R.safetensors" --classes 5 -o "$TMP/x.ckpt"
expect "another input" 1 "" -- \
    checkpoint import "$R.safetensors" --input 3x32x32 -o "$TMP/x.ckpt"

mkdir "$TMP/h"
dropped=$("${CHECK[@]}" hostile "$R.safetensors" "$TMP/h")
# hostile NAME PATTERN: importing h/NAME.safetensors fails with PATTERN.
hostile() {
    expect "hostile $1" 1 "$2" -- checkpoint import "$TMP/h/$1.safetensors" \
        -o "$TMP/h/x.ckpt"
}
hostile short "too short for a safetensors file"
hostile huge-length "header length 4611686018427387904 is not within"
hostile past-end "header length 1000 is not within"
hostile not-json "the header is not a JSON object"
hostile array "does not start with '{'"
hostile nul "NUL byte"
hostile f16 "conv1.bias: dtype F16: tfq reads F32 only"
hostile offset-past-end "are not a range inside the"
hostile overlap "overlaps the tensor before"
hostile negative "not a whole number"
hostile shape-size "its shape needs 12"
hostile shape-string "shape holds '16'"
hostile no-shape "needs dtype, shape and data_offsets"
hostile meta-number "__metadata__: a value is not a string"
hostile unknown-field "unknown field 'strides'"
hostile missing "$dropped: the net needs it and the file has no such tensor"
hostile extra "zz.extra: the file has this tensor and the net has no place"
[ -e "$TMP/h/x.ckpt" ] && fail "a refused import left $TMP/h/x.ckpt"

# ---- a grid from imported base nets (base:) ---------------------------------

expect "base A: train" 0 -- train "${SHORT[@]}" --classes 0,1,2,3,4 \
    --save "$TMP/baseA.ckpt"
expect "base B: train" 0 -- train "${SHORT[@]}" --classes 5,6,7,8,9 \
    --save "$TMP/baseB.ckpt"
expect "base A: export" 0 -- checkpoint export --file "$TMP/baseA.ckpt" \
    -o "$TMP/baseA.safetensors"
cat >"$TMP/base.yaml" <<EOF
name: imported
dataset: {kind: fashion-mnist, limit_train: 3000, limit_test: $NTEST}
train: {epochs: 1}
splits: {custom: [{name: s, A: [0, 1, 2, 3, 4], B: [5, 6, 7, 8, 9]}]}
layers: 1-2
variants: [selffer, transfer, random]
base: {A: $TMP/baseA.safetensors, B: $TMP/baseB.ckpt}
EOF
if expect "submit --dry-run with base:" 0 -- submit "$TMP/base.yaml" --dry-run; then
    ! grep -q "/base[AB] " "$TMP/out" && grep -q "^s/1/A1B " "$TMP/out" &&
        grep -q "^s/1/R2B " "$TMP/out" && grep -q "^6 jobs" "$TMP/out" &&
        ok "base: expands to the derived nets alone" ||
        fail "base: expansion: $(cat "$TMP/out")"
fi
sed "s|B: $TMP/baseB.ckpt|B: $R.ckpt|" "$TMP/base.yaml" >"$TMP/base-wrong.yaml"
expect "base: of the other task's classes" 1 \
    "base.B: $R.ckpt: a checkpoint for 1x28x28 inputs and 10 classes" -- \
    submit "$TMP/base-wrong.yaml" --dry-run

# The run: submit uploads both bases (blob_put), a worker runs the 6
# derived nets, each copying from its task's imported checkpoint.
EP=ipc://$TMP/coord.sock
"$TFQ" coordinator --bind "$EP" --state "$TMP/state" >"$TMP/coord.log" 2>&1 &
PIDS+=($!)
if "$TFQ" submit "$TMP/base.yaml" --connect "$EP" >"$TMP/out" 2>"$TMP/err"; then
    "$TFQ" worker --connect "$EP" --exit-when-idle >"$TMP/worker.log" 2>&1 &&
        "$TFQ" status imported --connect "$EP" --json >"$TMP/status.json" &&
        grep -q '"done": 6, "failed": 0' "$TMP/status.json" &&
        ok "a grid from imported base nets runs to the end" ||
        fail "base: grid run: $(cat "$TMP/status.json" "$TMP/worker.log")"
else
    fail "base: submit: $(cat "$TMP/err")"
fi

[ "$failures" -eq 0 ] || exit 1
