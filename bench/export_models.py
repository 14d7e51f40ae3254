#!/usr/bin/python3
"""Exports kiln's benchmark set to ONNX (opset 17, dynamic batch) into bench/models/.

    /usr/bin/python3 bench/export_models.py [--out bench/models] [--only resnet50,...]

Uses Debian's python3-torch 1.13 and python3-torchvision 0.14 (bench/setup.sh installs them).
Nothing is downloaded: every model gets fixed random weights (torch.manual_seed(0)), with
BatchNorm statistics and affine parameters randomised too so that folding them is not a no-op.

  resnet50     torchvision ResNet-50, input [N,3,224,224] float32 -> logits [N,1000]
  mobilenetv2  torchvision MobileNetV2, input [N,3,224,224] float32 -> logits [N,1000]
  bert_base    a BERT-base encoder written with torch.nn: token + position embeddings,
               LayerNorm, 12 layers of (self-attention with 12 heads, hidden 768; FFN 3072 with
               exact GELU; post-LayerNorm residuals), input_ids [N,128] int64 ->
               last_hidden_state [N,128,768] float32

Each model also gets <name>.json describing its input (name, dtype, shape with "N" for the
batch, value range) for bench/peer_bench.js and bench/torch_bench.py. The TF.js models of the
fixtures come from scripts/fetch_tfjs_models.sh (bench/run_peer_bench.sh --tfjs uses them).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision

SEQ = 128


class BertEmbeddings(nn.Module):
    def __init__(self, vocab=30522, hidden=768, max_pos=512):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(max_pos, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(SEQ).unsqueeze(0), persistent=False)

    def forward(self, input_ids):
        return self.norm(self.word(input_ids) + self.position(self.position_ids))


class BertLayer(nn.Module):
    def __init__(self, hidden=768, heads=12, ffn=3072):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.gelu = nn.GELU()
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-12)

    # Reshapes use -1 for the batch so the exported graph has constant shapes (no
    # Shape/Gather/Concat chains computing the batch at run time).
    def split_heads(self, x):  # [N,S,H] -> [N,heads,S,head_dim]
        return x.view(-1, SEQ, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x):
        q, k, v = (self.split_heads(f(x)) for f in (self.query, self.key, self.value))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).reshape(-1, SEQ, self.heads * self.head_dim)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.ffn_norm(x + self.ffn_out(self.gelu(self.ffn_in(x))))


class BertEncoder(nn.Module):
    def __init__(self, layers=12):
        super().__init__()
        self.embeddings = BertEmbeddings()
        self.layers = nn.ModuleList(BertLayer() for _ in range(layers))
        for m in self.modules():  # BERT's initialiser: N(0, 0.02), zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, input_ids):
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x)
        return x


def randomize_norms(model):
    """Non-trivial BatchNorm/LayerNorm parameters and statistics (fixed by the global seed)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.uniform_(-0.1, 0.1)
        elif isinstance(m, nn.LayerNorm):
            m.weight.data.uniform_(0.8, 1.2)
            m.bias.data.uniform_(-0.1, 0.1)


def build(name):
    torch.manual_seed(0)
    if name == "resnet50":
        model = torchvision.models.resnet50(weights=None)
        spec = {"name": "input", "dtype": "float32", "shape": ["N", 3, 224, 224],
                "low": -1.0, "high": 1.0}
    elif name == "mobilenetv2":
        model = torchvision.models.mobilenet_v2(weights=None)
        spec = {"name": "input", "dtype": "float32", "shape": ["N", 3, 224, 224],
                "low": -1.0, "high": 1.0}
    elif name == "bert_base":
        model = BertEncoder()
        spec = {"name": "input_ids", "dtype": "int64", "shape": ["N", SEQ],
                "low": 0, "high": 30522}
    else:
        raise SystemExit(f"unknown model {name}")
    randomize_norms(model)
    return model.eval(), spec


def example_input(spec, batch=1):
    shape = [batch if d == "N" else d for d in spec["shape"]]
    g = torch.Generator().manual_seed(1)
    if spec["dtype"] == "int64":
        return torch.randint(spec["low"], spec["high"], shape, generator=g)
    return torch.rand(shape, generator=g) * (spec["high"] - spec["low"]) + spec["low"]


def export(name, out_dir):
    model, spec = build(name)
    output = "last_hidden_state" if name == "bert_base" else "logits"
    path = os.path.join(out_dir, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(model, (example_input(spec, 2),), path, opset_version=17,
                          input_names=[spec["name"]], output_names=[output],
                          dynamic_axes={spec["name"]: {0: "N"}, output: {0: "N"}},
                          do_constant_folding=True)
    # The TorchScript peer (bench/torch_bench.py) rebuilds the same module from this script
    # with the same seed; the state dict is saved too so the weights are the exported ones.
    torch.save(model.state_dict(), os.path.join(out_dir, name + ".pt"))
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"model": name, "onnx": name + ".onnx", "input": spec, "output": output}, f,
                  indent=2)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "models"))
    ap.add_argument("--only", default="resnet50,mobilenetv2,bert_base")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    for name in args.only.split(","):
        export(name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
