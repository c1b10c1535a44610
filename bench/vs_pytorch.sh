#!/bin/bash
# tfq's training speed against PyTorch's on the same CPU, in one run.
#
# For each net and thread count: `tfq bench --json` (images/s, and OpenBLAS
# sgemm 1024^3 GFLOP/s measured in the same process), then the same net
# and the same step in PyTorch (vs_pytorch.py beside this script: forward,
# softmax cross-entropy, backward, SGD with momentum and weight decay, batch
# 64, synthetic data), each a median of --repeats repeats of --steps steps
# after a warm-up.  Prints the CPU, a table of images/s, tfq/PyTorch,
# tfq/sgemm (tfq bench's ratio) and the speed-up of each thread count over
# 1 thread, and checks that both nets count the same nominal FLOPs.
#
# Usage: vs_pytorch.sh [TFQ] [OPTIONS]
#   TFQ             the tfq binary (default build/cli/tfq)
#   --nets LIST     nets, of reference and wide (default "reference wide")
#   --threads LIST  thread counts (default "1 2")
#   --repeats N     timed repeats per figure, median reported (default 5)
#   --rounds N      the whole comparison N times, tfq and PyTorch taking
#                   turns; images/s are medians over rounds, and each ratio
#                   (tfq/PyTorch, N threads/1 thread) is the median of the
#                   rounds' own ratios, so a slow spell of the machine
#                   weighs on one round only (default 3)
#   --steps N       training steps per repeat (default 20)
#   --python PY     the interpreter for the PyTorch side (default: the first
#                   of python3 and the system's /usr/bin/python3 that imports
#                   torch; a python3 first on PATH may not see Debian's
#                   python3-torch)
#   --no-install    do not try `apt-get install python3-torch` when torch is
#                   missing (tried only as root with apt-get at hand)
#   --json          one JSON object on stdout instead of the table
# Progress goes to stderr.  Without torch, PyTorch is skipped with a message
# and the tfq figures are still printed.
#
# Kernels.  OPENBLAS_CORETYPE and any other OPENBLAS_* settings of the
# environment are left as they are, for tfq and torch alike.  tfq's GEMMs
# are OpenBLAS's (and the kernel set it reports, when its bench says one).
# Debian's torch picks its own: convolutions, forward and backward, run in
# its oneDNN (MKL-DNN), whose JIT picks the widest ISA that cpuid reports
# (DNNL_MAX_CPU_ISA caps it; DNNL_VERBOSE=1 shows the choice); its
# elementwise ops use ATen's per-ISA kernels ("CPU capability" below,
# ATEN_CPU_CAPABILITY overrides); its linear layers and torch.mm go to the
# system BLAS (libblas.so.3, OpenBLAS when that is the alternative chosen),
# so OPENBLAS_CORETYPE reaches those too.  torch.set_num_threads sets
# OpenMP's threads (ATen, oneDNN) but not OpenBLAS's, so each PyTorch run is
# started with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to its count.
set -u

BATCH=64 # the brief's batch; tfq bench's default too
TFQ=build/cli/tfq
NETS="reference wide"
THREADS="1 2"
REPEATS=5
ROUNDS=3
STEPS=20
PY=""
INSTALL=1
JSON=0
HERE=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '/^# Usage:/,/^# and the tfq figures/p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "vs_pytorch: $*" >&2; exit 2; }
note() { echo "vs_pytorch: $*" >&2; }
# int_in NAME VALUE LO HI: VALUE is a decimal integer in [LO, HI].
int_in() {
    if ! [[ "$2" =~ ^[0-9]{1,6}$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
        die "$1 must be an integer in $3..$4, not '$2'"
    fi
}
# need_arg OPTION ARGC: the option has a value after it.
need_arg() { [ "$2" -ge 2 ] || die "$1 needs a value (--help for usage)"; }

TFQ_SET=0
while [ $# -gt 0 ]; do
    case "$1" in
    --nets) need_arg "$1" $#; NETS="$2"; shift 2 ;;
    --threads) need_arg "$1" $#; THREADS="$2"; shift 2 ;;
    --repeats) need_arg "$1" $#; REPEATS="$2"; shift 2 ;;
    --rounds) need_arg "$1" $#; ROUNDS="$2"; shift 2 ;;
    --steps) need_arg "$1" $#; STEPS="$2"; shift 2 ;;
    --python) need_arg "$1" $#; PY="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --json) JSON=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (--help for usage)" ;;
    *)
        [ "$TFQ_SET" = 0 ] || die "one tfq binary only, not also '$1'"
        TFQ="$1"; TFQ_SET=1; shift ;;
    esac
done

int_in --repeats "$REPEATS" 1 1000
int_in --rounds "$ROUNDS" 1 100
int_in --steps "$STEPS" 1 100000
read -r -a NET_LIST <<<"$NETS"
read -r -a THREAD_LIST <<<"$THREADS"
[ "${#NET_LIST[@]}" -gt 0 ] || die "--nets is empty"
[ "${#THREAD_LIST[@]}" -gt 0 ] || die "--threads is empty"
for n in "${NET_LIST[@]}"; do
    case "$n" in
    reference | wide) ;;
    *) die "--nets: unknown net '$n' (expected reference or wide)" ;;
    esac
done
for t in "${THREAD_LIST[@]}"; do int_in "--threads" "$t" 1 256; done
[ -x "$TFQ" ] || die "tfq binary '$TFQ' is not an executable file (build it: meson setup build && ninja -C build)"
"$TFQ" bench --help >/dev/null 2>&1 || die "'$TFQ bench --help' failed: is '$TFQ' tfq?"
CORES=$(nproc 2>/dev/null || echo 1)
for t in "${THREAD_LIST[@]}"; do
    [ "$t" -le "$CORES" ] || note "warning: $t threads on $CORES cores oversubscribes them"
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/vs-pytorch-XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$DIR"' EXIT
REC="$DIR/records" # one record a line: KIND<TAB>NET<TAB>THREADS<TAB>VALUE
: >"$REC"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$REC"; }

# The CPU.
MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
[ -n "$MODEL" ] || MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has_flag() { [[ " ${FLAGS#*:} " == *" $1 "* ]] && echo true || echo false; }
record meta - - "cpu_model=${MODEL:-unknown}"
record meta - - "cores=$CORES"
record meta - - "avx2=$(has_flag avx2)"
record meta - - "avx512f=$(has_flag avx512f)"
record meta - - "openblas_coretype=${OPENBLAS_CORETYPE:-}"
record meta - - "batch=$BATCH"
record meta - - "repeats=$REPEATS"
record meta - - "rounds=$ROUNDS"
record meta - - "steps=$STEPS"

# An interpreter that imports torch, installing Debian's package if allowed.
imports_torch() { command -v "$1" >/dev/null 2>&1 && "$1" -c 'import torch' >/dev/null 2>&1; }
find_torch_python() {
    local p
    if [ -n "$PY" ]; then
        imports_torch "$PY" && echo "$PY"
        return
    fi
    for p in python3 /usr/bin/python3; do
        imports_torch "$p" && { echo "$p"; return 0; }
    done
    return 1
}
TORCH_PY=$(find_torch_python)
if [ -z "$TORCH_PY" ] && [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] &&
    command -v apt-get >/dev/null 2>&1; then
    note "torch does not import; trying apt-get install -y python3-torch"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y python3-torch >"$DIR/apt.log" 2>&1 ||
        { apt-get update >>"$DIR/apt.log" 2>&1 &&
            apt-get install -y python3-torch >>"$DIR/apt.log" 2>&1; } ||
        note "apt-get install python3-torch failed: $(tail -1 "$DIR/apt.log")"
    TORCH_PY=$(find_torch_python)
fi
if [ -z "$TORCH_PY" ]; then
    if [ -n "$PY" ]; then WHY="--python $PY does not import torch"
    else WHY="neither python3 nor /usr/bin/python3 imports torch"; fi
    note "PyTorch is skipped: $WHY; install Debian's python3-torch to compare"
    record meta - - "torch_skipped=$WHY"
else
    record meta - - "torch_python=$TORCH_PY"
fi

for ((round = 1; round <= ROUNDS; round++)); do
for net in "${NET_LIST[@]}"; do
    for t in "${THREAD_LIST[@]}"; do
        note "round $round/$ROUNDS: tfq     $net, $t thread(s), $REPEATS x $STEPS steps"
        if out=$("$TFQ" bench --net "$net" --batch "$BATCH" --threads "$t" \
            --repeats "$REPEATS" --steps "$STEPS" --json 2>"$DIR/err"); then
            record tfq "$net" "$t" "$out"
        else
            note "tfq bench failed for $net, $t thread(s): $(tail -1 "$DIR/err")"
        fi
        [ -n "$TORCH_PY" ] || continue
        note "PyTorch $net, $t thread(s), $REPEATS x $STEPS steps"
        if out=$(OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" \
            "$TORCH_PY" "$HERE/vs_pytorch.py" "$net" "$t" "$BATCH" "$STEPS" \
            "$REPEATS" 2>"$DIR/err"); then
            record torch "$net" "$t" "$out"
        else
            note "PyTorch failed for $net, $t thread(s): $(tail -1 "$DIR/err")"
        fi
    done
done
done

# The report needs only Python's standard library, not torch.
REPORT_PY=""
for p in ${TORCH_PY:+"$TORCH_PY"} python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 && { REPORT_PY="$p"; break; }
done
if [ -z "$REPORT_PY" ]; then
    note "no python3 for the report; the raw records follow"
    cat "$REC"
    exit 1
fi
"$REPORT_PY" - "$REC" "$JSON" <<'EOF'
import json
import sys

meta, runs = {}, {}
with open(sys.argv[1]) as f:
    for line in f:
        kind, net, threads, value = line.rstrip("\n").split("\t", 3)
        if kind == "meta":
            k, v = value.split("=", 1)
            meta[k] = v
        else:
            runs.setdefault((net, int(threads)), {}).setdefault(
                kind, []).append(json.loads(value))


def median_record(recs):
    """One record of several rounds: the median of each number."""
    out = dict(recs[0])
    for k, v in recs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = sorted(r[k] for r in recs if isinstance(r.get(k), (int, float)))
            m = len(vals)
            out[k] = vals[m // 2] if m % 2 else (vals[m // 2 - 1] + vals[m // 2]) / 2
            if isinstance(v, int) and out[k] == int(out[k]):
                out[k] = int(out[k])
    return out


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    m = len(vals)
    if m == 0:
        return None
    return vals[m // 2] if m % 2 else (vals[m // 2 - 1] + vals[m // 2]) / 2


def per_round(a, b):
    """The median over rounds of a / b, each round's a over the same
    round's b: the two were measured minutes apart at most, so a slow spell
    of the machine cancels."""
    return median([x / y for x, y in zip(a, b) if x and y])


raw = runs
runs = {key: {kind: median_record(recs) for kind, recs in kinds.items()}
        for key, kinds in runs.items()}


def ips_list(key, kind):
    return [r.get("train_images_per_s") for r in raw.get(key, {}).get(kind, [])]
as_json = sys.argv[2] == "1"
order = sorted(runs, key=lambda k: (["reference", "wide"].index(k[0]), k[1]))


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def field(run, kind, name):
    return run.get(kind, {}).get(name)


rows, nets = [], {}
kernels = sorted({r["tfq"]["kernels"] for r in runs.values()
                  if "kernels" in r.get("tfq", {})})
torch_info = next((r["torch"] for r in runs.values() if "torch" in r), {})
for net, t in order:
    run = runs[(net, t)]
    one = runs.get((net, 1), {})
    tfq_ips = field(run, "tfq", "train_images_per_s")
    pt_ips = field(run, "torch", "train_images_per_s")
    rows.append({
        "net": net, "threads": t,
        "tfq_images_per_s": tfq_ips,
        "torch_images_per_s": pt_ips,
        "tfq_over_torch": (round(per_round(ips_list((net, t), "tfq"),
                                           ips_list((net, t), "torch")), 3)
                           if tfq_ips and pt_ips else None),
        "sgemm_gflops": field(run, "tfq", "sgemm_gflops"),
        "tfq_gflops": field(run, "tfq", "train_gflops"),
        "tfq_over_sgemm": field(run, "tfq", "ratio"),
        "torch_gflops": field(run, "torch", "train_gflops"),
        "torch_mm_gflops": field(run, "torch", "mm_gflops"),
        "torch_over_mm": ratio(field(run, "torch", "train_gflops"),
                               field(run, "torch", "mm_gflops")),
        "tfq_speedup": (round(per_round(ips_list((net, t), "tfq"),
                                        ips_list((net, 1), "tfq")), 3)
                        if t != 1 and tfq_ips and one else None),
        "torch_speedup": (round(per_round(ips_list((net, t), "torch"),
                                          ips_list((net, 1), "torch")), 3)
                          if t != 1 and pt_ips and one.get("torch") else None),
        "tfq_kernels": field(run, "tfq", "kernels"),
    })
    n = nets.setdefault(net, {})
    for kind in ("tfq", "torch"):
        flops = field(run, kind, "nominal_flops_per_image")
        if flops is not None:
            n[kind + "_mflop_per_image"] = round(flops * 1e-6, 3)
    if field(run, "torch", "params") is not None:
        n["torch_params"] = field(run, "torch", "params")
for n in nets.values():
    if "tfq_mflop_per_image" in n and "torch_mflop_per_image" in n:
        n["same_flops"] = n["tfq_mflop_per_image"] == n["torch_mflop_per_image"]

if as_json:
    json.dump({
        "cpu": {"model": meta.get("cpu_model"), "cores": int(meta["cores"]),
                "avx2": meta["avx2"] == "true",
                "avx512f": meta["avx512f"] == "true"},
        "openblas_coretype": meta.get("openblas_coretype") or None,
        "tfq_kernels": ",".join(kernels) or None,
        "torch": {
            "available": "torch_skipped" not in meta,
            "skipped_reason": meta.get("torch_skipped"),
            "version": torch_info.get("torch_version"),
            "cpu_capability": torch_info.get("cpu_capability"),
            "onednn": torch_info.get("onednn"),
        },
        "batch": int(meta["batch"]), "repeats": int(meta["repeats"]),
        "steps": int(meta["steps"]),
        "nets": nets, "runs": rows,
    }, sys.stdout, indent=1)
    print()
    sys.exit(0)


def cell(v, fmt):
    return "-" if v is None else fmt % v


avx = [f for f in ("avx2", "avx512f") if meta[f] == "true"]
print("CPU: %s (%s cores; %s)" % (meta.get("cpu_model"), meta["cores"],
      ", ".join(avx) + " present" if avx else "no avx2, no avx512f"))
print("OPENBLAS_CORETYPE: %s" % (meta.get("openblas_coretype") or "(not set)"))
print("tfq kernels: %s" % (", ".join(kernels) or
                           "(not reported by this tfq bench)"))
if "torch_skipped" in meta:
    print("PyTorch: skipped (%s)" % meta["torch_skipped"])
else:
    print("PyTorch: %s, CPU capability %s, oneDNN %s" % (
        torch_info.get("torch_version"), torch_info.get("cpu_capability"),
        torch_info.get("onednn")))
print("batch %s, medians over %s rounds of medians of %s repeats of %s "
      "steps; images/s of training (forward + backward + SGD update)" % (
          meta["batch"], meta.get("rounds", "1"), meta["repeats"],
          meta["steps"]))
print()
head = ("net", "thr", "tfq img/s", "torch img/s", "tfq/torch", "sgemm GF/s",
        "tfq/sgemm", "torch mm GF/s", "tfq xN/x1", "torch xN/x1")
fmt = "%-9s %3s %10s %11s %9s %10s %9s %13s %9s %11s"
print(fmt % head)
for r in rows:
    print(fmt % (r["net"], r["threads"],
                 cell(r["tfq_images_per_s"], "%.1f"),
                 cell(r["torch_images_per_s"], "%.1f"),
                 cell(r["tfq_over_torch"], "%.2f"),
                 cell(r["sgemm_gflops"], "%.1f"),
                 cell(r["tfq_over_sgemm"], "%.3f"),
                 cell(r["torch_mm_gflops"], "%.1f"),
                 cell(r["tfq_speedup"], "%.2f"),
                 cell(r["torch_speedup"], "%.2f")))
print()
print("tfq/sgemm: tfq's nominal training GFLOP/s over OpenBLAS sgemm 1024^3 "
      "in the same run;")
print("xN/x1: images/s at N threads over 1 thread; torch mm: torch.mm 1024^3 "
      "in the PyTorch run;")
print("tfq/torch and xN/x1 are medians of each round's own ratio.")
for net, n in nets.items():
    check = ""
    if "same_flops" in n:
        check = "  same" if n["same_flops"] else "  MISMATCH: not the same net"
    print("check %-9s nominal MFLOP/image: tfq %s, torch %s; torch "
          "parameters %s%s" % (net, n.get("tfq_mflop_per_image", "-"),
                               n.get("torch_mflop_per_image", "-"),
                               n.get("torch_params", "-"), check))
EOF
