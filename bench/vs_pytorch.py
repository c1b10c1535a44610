"""The PyTorch side of vs_pytorch.sh: one net, one thread count.

usage: python3 vs_pytorch.py NET THREADS BATCH STEPS REPEATS

Times what `tfq bench` times (trainer_time_steps): per step, one batch of
synthetic 1x28x28 bytes normalized to floats, forward in training mode,
softmax cross-entropy, backward, and an SGD step with tfq's defaults
(train_config_default): lr 0.01, momentum 0.9, weight decay 5e-4 on
weights, biases at 2x the learning rate and no decay.  After three warm-up
steps it times REPEATS repeats of STEPS steps, each after five 1024^3
torch.mm products (interleaved, as tfq bench interleaves its sgemm), and
prints one JSON object with the medians.

The thread count is set with torch.set_num_threads (OpenMP: ATen and
oneDNN) and set_num_interop_threads(1); the caller also sets
OPENBLAS_NUM_THREADS, since the BLAS behind torch's linear layers and
torch.mm is not reached by set_num_threads in a build without MKL.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The presets of common/netspec.c (netspec_preset), in its layer-list syntax.
PRESET = ("conv {0} 5 pad=2; relu; maxpool 2; "
          "conv {1} 5 pad=2; relu; maxpool 2; "
          "conv {2} 3 pad=1; relu; conv {3} 3 pad=1; relu; "
          "conv {4} 3 pad=1; relu; maxpool 2; "
          "fc {5}; relu; dropout 0.5; fc {6}; relu; dropout 0.5; fc classes")
WIDTHS = {"reference": (16, 32, 48, 48, 32, 128, 128),
          "wide": (32, 64, 96, 96, 64, 256, 256)}
CLASSES = 10
MEAN, STD = 0.5, 0.29  # cmd_bench.c's data_norm
LR, MOMENTUM, DECAY, BIAS_LR_MULT = 0.01, 0.9, 5e-4, 2.0
SGEMM_N = 1024
WARMUP_STEPS = 3


def build(spec, c, h, w):
    """nn.Sequential for a tfq layer list on (c, h, w) inputs, and its
    forward multiply-adds per image (conv and fc only, as net_macs)."""
    layers, macs = [], 0
    for op in (s.split() for s in spec.split(";")):
        kind, args = op[0], op[1:]
        kw = dict(a.split("=") for a in args if "=" in a)
        pos = [a for a in args if "=" not in a]
        if kind == "conv":
            out, k = int(pos[0]), int(pos[1])
            stride, pad = int(kw.get("stride", 1)), int(kw.get("pad", 0))
            layers.append(nn.Conv2d(c, out, k, stride, pad))
            h = (h + 2 * pad - k) // stride + 1
            w = (w + 2 * pad - k) // stride + 1
            macs += out * h * w * c * k * k
            c = out
        elif kind == "maxpool":
            k = int(pos[0])
            stride = int(kw.get("stride", k))
            # ceil_mode: tfq rounds pooled sizes up as Caffe does (pool.c).
            layers.append(nn.MaxPool2d(k, stride, ceil_mode=True))
            h = (h - k + stride - 1) // stride + 1
            w = (w - k + stride - 1) // stride + 1
        elif kind == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif kind == "dropout":
            layers.append(nn.Dropout(float(pos[0])))
        elif kind == "fc":
            out = CLASSES if pos[0] == "classes" else int(pos[0])
            if h * w > 1:
                layers.append(nn.Flatten())
            layers.append(nn.Linear(c * h * w, out))
            macs += c * h * w * out
            c, h, w = out, 1, 1
        else:
            raise ValueError("layer kind %r is not handled here" % kind)
    return nn.Sequential(*layers), macs


def mm_gflops(a, b, products):
    t0 = time.perf_counter()
    for _ in range(products):
        torch.mm(a, b)
    return 2.0 * SGEMM_N ** 3 * products / (time.perf_counter() - t0) * 1e-9


def config_line(prefix):
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith(prefix):
            return line[len(prefix):].strip(" :")
    return ""


def main():
    net_name, threads, batch, steps, repeats = sys.argv[1:6]
    threads, batch, steps, repeats = (int(threads), int(batch), int(steps),
                                      int(repeats))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    model, macs = build(PRESET.format(*WIDTHS[net_name]), 1, 28, 28)
    model.train()
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([
        {"params": weights, "lr": LR, "weight_decay": DECAY},
        {"params": biases, "lr": LR * BIAS_LR_MULT, "weight_decay": 0.0},
    ], lr=LR, momentum=MOMENTUM)
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8,
                           generator=g)
    labels = torch.arange(batch) % CLASSES

    def run_steps(n):
        t0 = time.perf_counter()
        for _ in range(n):
            x = (images.float() * (1.0 / 255.0) - MEAN) / STD
            loss = F.cross_entropy(model(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    a = torch.rand(SGEMM_N, SGEMM_N, generator=g) - 0.5
    b = torch.rand(SGEMM_N, SGEMM_N, generator=g) - 0.5
    run_steps(WARMUP_STEPS)
    mm_gflops(a, b, 1)
    ips, mm = [], []
    for _ in range(repeats):
        mm.append(mm_gflops(a, b, 5))
        ips.append(steps * batch / run_steps(steps))
    flops = 6.0 * macs  # per image, counted as tfq bench counts them
    images_per_s = statistics.median(ips)
    json.dump({
        "net": net_name, "threads": threads, "batch": batch,
        "train_images_per_s": round(images_per_s, 1),
        "train_gflops": round(images_per_s * flops * 1e-9, 2),
        "mm_gflops": round(statistics.median(mm), 2),
        "nominal_flops_per_image": flops,
        "params": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "cpu_capability": config_line("CPU capability usage"),
        "onednn": config_line("Intel(R) MKL-DNN"),
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
