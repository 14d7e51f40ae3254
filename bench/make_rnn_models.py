#!/usr/bin/env python3
"""Writes small ONNX models holding one LSTM / GRU / RNN node (stdlib only, no onnx package).

Each model reads X [batch, seq, feat] (MNIST rows as time steps, like the lstm / gru GraphDef
fixtures), transposes it to ONNX's [seq, batch, feat], runs the recurrent node (weights are
random initializers) and a dense layer on the last hidden state:

  X -> Transpose -> LSTM|GRU|RNN -> Y_h [dirs, batch, H] -> Transpose -> Reshape [batch, dirs*H]
    -> MatMul + Add -> out [batch, 10]

usage: make_rnn_models.py OUT_DIR   (writes lstm.onnx, lstm_bidir.onnx, gru.onnx, gru_lbr.onnx,
                                     rnn.onnx)
Used for the CPU engine's RNN numbers (docs/design.md "RNNs in the CPU engine").
"""
import os
import random
import struct
import sys


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def f_int(field, v):
    return key(field, 0) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def tensor(name, dims, values):
    body = b"".join(f_int(1, d) for d in dims) + f_int(2, 1) + f_bytes(8, name)
    return body + f_bytes(9, struct.pack("<%df" % len(values), *values))


def tensor_i64(name, dims, values):
    body = b"".join(f_int(1, d) for d in dims) + f_int(2, 7) + f_bytes(8, name)
    return body + f_bytes(9, struct.pack("<%dq" % len(values), *values))


def value_info(name, dims):
    shape = b"".join(f_bytes(1, f_int(1, d)) for d in dims)
    ttype = f_int(1, 1) + f_bytes(2, shape)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, ttype))


def attr_int(name, v):
    return f_bytes(1, name) + f_int(3, v) + f_int(20, 2)


def attr_str(name, s):
    return f_bytes(1, name) + f_bytes(4, s) + f_int(20, 3)


def attr_ints(name, vs):
    return f_bytes(1, name) + b"".join(f_int(8, v) for v in vs) + f_int(20, 7)


def node(op, ins, outs, name, attrs=()):
    b = b"".join(f_bytes(1, i) for i in ins) + b"".join(f_bytes(2, o) for o in outs)
    b += f_bytes(3, name) + f_bytes(4, op)
    return b + b"".join(f_bytes(5, a) for a in attrs)


def rand(n, rng, scale):
    return [rng.uniform(-scale, scale) for _ in range(n)]


def model(op, direction="forward", lbr=0, batch=1, seq=28, feat=28, hidden=128, seed=0,
          extra_attrs=()):
    rng = random.Random(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    s = 1.0 / hidden ** 0.5
    inits = [
        tensor("W", [nd, g * hidden, feat], rand(nd * g * hidden * feat, rng, s)),
        tensor("R", [nd, g * hidden, hidden], rand(nd * g * hidden * hidden, rng, s)),
        tensor("B", [nd, 2 * g * hidden], rand(nd * 2 * g * hidden, rng, s)),
        tensor("dense_w", [nd * hidden, 10], rand(nd * hidden * 10, rng, 0.1)),
        tensor("dense_b", [10], rand(10, rng, 0.1)),
        tensor_i64("flat", [2], [batch, nd * hidden]),
    ]
    attrs = [attr_int("hidden_size", hidden), attr_str("direction", direction)]
    if op == "GRU":
        attrs.append(attr_int("linear_before_reset", lbr))
    attrs += list(extra_attrs)
    nodes = [
        node("Transpose", ["X"], ["xt"], "to_seq_major", [attr_ints("perm", [1, 0, 2])]),
        node(op, ["xt", "W", "R", "B"], ["", "h"], "rnn", attrs),
        node("Transpose", ["h"], ["hb"], "to_batch_major", [attr_ints("perm", [1, 0, 2])]),
        node("Reshape", ["hb", "flat"], ["hf"], "flatten"),
        node("MatMul", ["hf", "dense_w"], ["mm"], "dense"),
        node("Add", ["mm", "dense_b"], ["out"], "dense_bias"),
    ]
    graph = b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, op.lower())
    graph += b"".join(f_bytes(5, t) for t in inits)
    graph += f_bytes(11, value_info("X", [batch, seq, feat]))
    graph += f_bytes(12, value_info("out", [batch, 10]))
    opset = f_bytes(1, "") + f_int(2, 17)
    return f_int(1, 8) + f_bytes(2, "kiln-bench") + f_bytes(7, graph) + f_bytes(8, opset)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, kw in [("lstm", dict(op="LSTM")),
                     ("lstm_bidir", dict(op="LSTM", direction="bidirectional")),
                     ("gru", dict(op="GRU")),
                     ("gru_lbr", dict(op="GRU", lbr=1)),
                     ("rnn", dict(op="RNN"))]:
        path = os.path.join(out, name + ".onnx")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(model(**kw))
        os.replace(tmp, path)
        print(path)


if __name__ == "__main__":
    main()
