#!/usr/bin/python3
"""Reads tfq's weight exports with numpy alone and recomputes the net
(test_weights.sh).  Nothing here imports tfq: the safetensors header is
parsed as JSON, the tensors are np.frombuffer, and the forward pass (conv,
relu, max pool with Caffe's rounding, LRN, fc; dropout off) is written out
with the normalisation the metadata gives.

usage:
  test_weights.py accuracy FILE DATA_DIR NTEST    correct images (numpy)
  test_weights.py torch FILE DATA_DIR NTEST       the same in PyTorch; exit
                                                  77 when torch is absent
  test_weights.py ckpt-equal A.ckpt B.ckpt        weights and biases equal
                                                  bit for bit
  test_weights.py hostile SRC.safetensors DIR     writes hostile variants
"""

import gzip
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    """({name: float32 array}, metadata) of a safetensors file."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop('__metadata__', {})
    data = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        assert t['dtype'] == 'F32', (name, t['dtype'])
        b, e = t['data_offsets']
        tensors[name] = np.frombuffer(data[b:e], dtype='<f4').reshape(t['shape'])
    return tensors, meta


def read_npz(path):
    z = np.load(path)
    meta = json.loads(z['__metadata__.json'])
    return {k: z[k] for k in z.files if k != '__metadata__.json'}, meta


def read_weights(path):
    return read_npz(path) if path.endswith('.npz') else read_safetensors(path)


def parse_net(text):
    """[(kind, {arg: value})] of a canonical net description."""
    ops = []
    for part in text.split(';'):
        words = part.split()
        kind, args, pos = words[0], {}, []
        for w in words[1:]:
            if '=' in w:
                k, v = w.split('=')
                args[k] = float(v)
            else:
                pos.append(w)
        if kind == 'conv':
            args['out'], args['k'] = int(pos[0]), int(pos[1])
        elif kind == 'maxpool':
            args['k'] = int(pos[0])
        elif kind == 'fc':
            args['out'] = pos[0]
        elif kind == 'dropout':
            args['p'] = float(pos[0])
        ops.append((kind, args))
    return ops


def conv(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]          # (n, c, ho, wo, k, k)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    y = cols @ w.reshape(o, -1).T.astype(np.float64) + b
    return y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)


def maxpool(x, k, stride):
    """Caffe's rounding: the last window may hang over the edge."""
    n, c, h, w = x.shape
    ho = (h - k + stride - 1) // stride + 1
    wo = (w - k + stride - 1) // stride + 1
    ph, pw = (ho - 1) * stride + k - h, (wo - 1) * stride + k - w
    xp = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return win[:, :, ::stride, ::stride].max(axis=(4, 5))


def lrn(x, size, alpha, beta, k):
    sq = np.pad(x * x, ((0, 0), (size // 2, size // 2), (0, 0), (0, 0)))
    s = sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return x * (k + alpha / size * s) ** -beta


def forward(ops, t, x):
    """Logits of x (n, c, h, w), float64, with the tensors t."""
    g = 0
    for kind, a in ops:
        if kind in ('conv', 'fc'):
            g += 1
            name = f'{kind}{g}'
            w, b = t[name + '.weight'], t[name + '.bias']
        if kind == 'conv':
            x = conv(x, w, b, int(a['stride']), int(a['pad']))
        elif kind == 'fc':
            x = x.reshape(x.shape[0], -1) @ w.T.astype(np.float64) + b
        elif kind == 'relu':
            x = np.maximum(x, 0)
        elif kind == 'maxpool':
            x = maxpool(x, a['k'], int(a['stride']))
        elif kind == 'lrn':
            x = lrn(x, int(a['size']), a['alpha'], a['beta'], a['k'])
    return x


def idx_read(path):
    with gzip.open(path) if path.endswith('.gz') else open(path, 'rb') as f:
        raw = f.read()
    magic, n = struct.unpack('>II', raw[:8])
    if magic == 0x803:
        h, w = struct.unpack('>II', raw[8:16])
        return np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, h, w)
    return np.frombuffer(raw, np.uint8, offset=8)


def idx_file(data, name):
    plain = os.path.join(data, name)
    return plain if os.path.exists(plain) else plain + '.gz'


def test_set(meta, data, ntest):
    """The first ntest test images normalised as tfq does (float32:
    x * (1 / (255 std)) + (-mean / std)), and their labels."""
    x = idx_read(idx_file(data, 't10k-images-idx3-ubyte'))[:ntest]
    y = idx_read(idx_file(data, 't10k-labels-idx1-ubyte'))[:ntest]
    mean = np.array(meta['norm_mean'].split(','), np.float32)
    std = np.array(meta['norm_std'].split(','), np.float32)
    scale = np.float32(1) / (np.float32(255) * std)
    offset = -mean / std
    xf = x.astype(np.float32) * scale[None, :, None, None] + \
        offset[None, :, None, None]
    return xf, y


def accuracy(path, data, ntest):
    t, meta = read_weights(path)
    ops = parse_net(meta['net'])
    x, y = test_set(meta, data, ntest)
    correct = 0
    for i in range(0, len(y), 100):
        logits = forward(ops, t, x[i:i + 100].astype(np.float64))
        correct += int((logits.argmax(axis=1) == y[i:i + 100]).sum())
    print(correct)


def torch_accuracy(path, data, ntest):
    try:
        import torch
    except ImportError:
        print('torch is not installed')
        sys.exit(77)
    t, meta = read_safetensors(path)
    ops = parse_net(meta['net'])
    x, y = test_set(meta, data, ntest)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seq = []
            g, c, flat = 0, x.shape[1], False
            for kind, a in ops:
                if kind in ('conv', 'fc'):
                    g += 1
                if kind == 'conv':
                    m = torch.nn.Conv2d(c, a['out'], a['k'], int(a['stride']),
                                        int(a['pad']))
                    c = a['out']
                elif kind == 'fc':
                    w = t[f'fc{g}.weight']
                    m = torch.nn.Linear(w.shape[1], w.shape[0])
                    if not flat:
                        self.seq.append(torch.nn.Flatten())
                        flat = True
                elif kind == 'relu':
                    m = torch.nn.ReLU()
                elif kind == 'maxpool':
                    m = torch.nn.MaxPool2d(a['k'], int(a['stride']),
                                           ceil_mode=True)
                elif kind == 'lrn':
                    m = torch.nn.LocalResponseNorm(int(a['size']), a['alpha'],
                                                   a['beta'], a['k'])
                else:
                    m = torch.nn.Dropout(a['p'])
                if kind in ('conv', 'fc'):
                    setattr(self, f'{kind}{g}', m)
                self.seq.append(m)

        def forward(self, v):
            for m in self.seq:
                v = m(v)
            return v

    net = Net()
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in t.items()},
                        strict=True)
    net.eval()
    for m in net.seq:  # the list's modules are not the net's children
        m.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(x)))
    print(int((logits.argmax(dim=1).numpy() == y).sum()))


def ckpt_tensors(path):
    """{name: raw bytes} of the weights and biases of a tfq checkpoint,
    read from the format ckpt.h documents."""
    with open(path, 'rb') as f:
        raw = f.read()
    assert raw[:8] == b'TFQCKPT\0'
    (version,) = struct.unpack_from('<I', raw, 8)
    p = 12
    (n,) = struct.unpack_from('<I', raw, p)
    p += 4 + n + 4 * 4 + 4 * 2 + 8 * 4 + 4
    (nevals,) = struct.unpack_from('<i', raw, p)
    p += 4 + 8 * nevals + 64
    if version >= 2:
        (c,) = struct.unpack_from('<i', raw, p)
        p += 4 + 8 * c
    (count,) = struct.unpack_from('<I', raw, p)
    p += 4
    out = {}
    for _ in range(count):
        (n,) = struct.unpack_from('<I', raw, p)
        name = raw[p + 4:p + 4 + n].decode()
        p += 4 + n
        (ndim,) = struct.unpack_from('<I', raw, p)
        dims = struct.unpack_from(f'<{ndim}I', raw, p + 4)
        p += 4 + 4 * ndim
        size = 4 * int(np.prod(dims))
        if 'momentum' not in name:
            out[name] = raw[p:p + size]
        p += size
    assert p == len(raw) - 32, (p, len(raw))
    return out


def ckpt_equal(a, b):
    ta, tb = ckpt_tensors(a), ckpt_tensors(b)
    if ta.keys() != tb.keys():
        sys.exit(f'tensors differ: {sorted(ta)} vs {sorted(tb)}')
    for k in ta:
        if ta[k] != tb[k]:
            sys.exit(f'{k} differs')
    print(len(ta))


def write_st(path, header, data, length=None):
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h) if length is None else length))
        f.write(h + data)


def hostile(src, out):
    """Variants of a good export, each named after what is wrong with it."""
    with open(src, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    first = sorted(k for k in header if k != '__metadata__')[0]

    def variant(name, change):
        h = json.loads(json.dumps(header))
        change(h)
        write_st(os.path.join(out, name + '.safetensors'), h, data)

    with open(os.path.join(out, 'short.safetensors'), 'wb') as f:
        f.write(b'\x01\x02\x03')
    write_st(os.path.join(out, 'huge-length.safetensors'), b'{}', b'',
             length=1 << 62)
    write_st(os.path.join(out, 'past-end.safetensors'), b'{}', b'',
             length=1000)
    write_st(os.path.join(out, 'not-json.safetensors'), b'{"a": [1, 2', b'')
    write_st(os.path.join(out, 'array.safetensors'), b'[1, 2]', b'')
    write_st(os.path.join(out, 'nul.safetensors'), b'{"a\0": 1}', b'')
    variant('f16', lambda h: h[first].update(dtype='F16'))
    variant('offset-past-end', lambda h: h[first].update(
        data_offsets=[len(data) - 4, len(data) + 60]))
    second = sorted((t['data_offsets'][0], k) for k, t in header.items()
                    if k != '__metadata__')[1][1]
    variant('overlap', lambda h: h[second].update(
        data_offsets=[o - 4 for o in h[second]['data_offsets']]))
    variant('negative', lambda h: h[first].update(data_offsets=[-8, 56]))
    variant('shape-size', lambda h: h[first].update(shape=[3]))
    variant('shape-string', lambda h: h[first].update(shape=['16']))
    variant('no-shape', lambda h: h[first].pop('shape'))
    variant('meta-number', lambda h: h['__metadata__'].update(classes=10))
    variant('unknown-field', lambda h: h[first].update(strides=[1]))
    # well formed, but not the net's tensors
    drop = sorted(k for k in header if k.endswith('.bias'))[-1]
    fix = header[drop]['data_offsets']
    size = fix[1] - fix[0]

    def missing(h):
        h.pop(drop)
        for t in h.values():
            if 'data_offsets' in t and t['data_offsets'][0] >= fix[1]:
                t['data_offsets'] = [o - size for o in t['data_offsets']]
    h = json.loads(json.dumps(header))
    missing(h)
    write_st(os.path.join(out, 'missing.safetensors'), h,
             data[:fix[0]] + data[fix[1]:])
    h = json.loads(json.dumps(header))
    h['zz.extra'] = {'dtype': 'F32', 'shape': [2],
                     'data_offsets': [len(data), len(data) + 8]}
    write_st(os.path.join(out, 'extra.safetensors'), h, data + bytes(8))
    print(drop)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'accuracy':
        accuracy(args[0], args[1], int(args[2]))
    elif cmd == 'torch':
        torch_accuracy(args[0], args[1], int(args[2]))
    elif cmd == 'ckpt-equal':
        ckpt_equal(args[0], args[1])
    elif cmd == 'hostile':
        hostile(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
