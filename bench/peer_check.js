#!/usr/bin/env node
// Numerical peer check: kiln against ONNX Runtime (onnxruntime-node 1.30, bench/peer) on the
// same seeded random inputs, for the native model and its `kiln convert`ed form.
//
//   node bench/peer_check.js [--kiln build/bin/kiln] [--shape NAME=d0,d1,...]
//        [--convert-flags "--input-shape x=-1,3,48,192 --max-batch-size 2"] MODEL.onnx...
//
// For each model: `kiln inspect --json` gives the inputs (unknown dimensions: --shape, else 1);
// each input is filled with uniform [-1, 1) values from a fixed-seed generator and written as
// .npy; ONNX Runtime runs it (CPU, all graph optimizations); `kiln run --input ...` runs the
// native model and the converted one (`kiln convert`, FP32 static engines). Prints, per output,
// the relative L2 error of kiln against ORT (|kiln - ort| / |ort|) and the largest absolute
// difference; exits 1 when an output's relative error is above --tolerance (default 1e-4)
// and its largest absolute difference above --atol (default 1e-6: outputs near zero, such as
// a sigmoid of strongly negative logits, have no meaningful relative error).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {execFileSync} = require('child_process');
const ort = require(path.join(__dirname, 'peer', 'node_modules', 'onnxruntime-node'));

function parseArgs(argv) {
  const a = {kiln: null, shapes: {}, models: [], tolerance: 1e-4, atol: 1e-6, convertFlags: []};
  for (let i = 0; i < argv.length; ++i) {
    const v = argv[i];
    if (v === '--kiln') a.kiln = argv[++i];
    else if (v === '--tolerance') a.tolerance = Number(argv[++i]);
    else if (v === '--atol') a.atol = Number(argv[++i]);
    else if (v === '--convert-flags') a.convertFlags = argv[++i].split(/\s+/).filter((f) => f);
    else if (v === '--shape') {
      const [name, dims] = argv[++i].split('=');
      a.shapes[name] = dims.split(',').map(Number);
    } else a.models.push(v);
  }
  if (!a.kiln) {
    const repo = path.dirname(__dirname);
    a.kiln = ['build/bin/kiln', 'build-onnx/bin/kiln'].map((p) => path.join(repo, p))
        .find((p) => fs.existsSync(p));
  }
  if (!a.kiln || a.models.length === 0) {
    throw new Error('usage: peer_check.js [--kiln KILN] [--shape NAME=dims] MODEL.onnx...');
  }
  return a;
}

function mulberry32(seed) {  // small deterministic generator
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function writeNpyF32(file, data, dims) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function readNpyF32(file) {
  const buf = fs.readFileSync(file);
  const hlen = buf[6] === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const off = (buf[6] === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', off - hlen, off);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${file}: not float32`);
  const copy = Uint8Array.from(buf.subarray(off));
  return new Float32Array(copy.buffer);
}

function compare(got, want) {
  let num = 0, den = 0, maxAbs = 0;
  for (let i = 0; i < want.length; ++i) {
    const d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return {rel: Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30), maxAbs,
    sameLength: got.length === want.length};
}

function safeName(name) { return name.replace(/[^A-Za-z0-9._-]/g, '_'); }

async function checkModel(a, model, work) {
  const info = JSON.parse(execFileSync(a.kiln, ['inspect', '--json', model]).toString());
  const feeds = {};
  const inputArgs = [];
  const rand = mulberry32(1234);
  for (const input of info.inputs) {
    if (input.dtype !== 'float32') throw new Error(`${model}: input ${input.name} is ${input.dtype}`);
    const dims = a.shapes[input.name] || input.shape.map((d) => (d === null || d < 0 ? 1 : d));
    const n = dims.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; ++i) data[i] = 2 * rand() - 1;
    const file = path.join(work, `${safeName(input.name)}.npy`);
    writeNpyF32(file, data, dims);
    feeds[input.name] = new ort.Tensor('float32', data, dims);
    inputArgs.push('--input', `${input.name}=${file}`);
  }
  const session = await ort.InferenceSession.create(model, {graphOptimizationLevel: 'all'});
  const ortOut = await session.run(feeds);
  const converted = path.join(work, 'converted.onnx');
  const summary = execFileSync(a.kiln, ['convert', model, '-o', converted, ...a.convertFlags])
      .toString();
  const conv = /converted: (\d+ \([\d.]+%\) into \d+ engine\(s\))/.exec(summary);
  const convertedNote = conv ? `converted (${conv[1]})` : 'converted';
  const rows = [];
  for (const [label, file] of [['native', model], ['converted', converted]]) {
    const outDir = path.join(work, label);
    execFileSync(a.kiln, ['run', file, ...inputArgs, '--output-dir', outDir], {stdio: 'ignore'});
    for (const name of session.outputNames) {
      const got = readNpyF32(path.join(outDir, `${safeName(name)}.npy`));
      const r = compare(got, ortOut[name].data);
      rows.push({model: path.basename(model), kiln: label === 'native' ? label : convertedNote,
        output: name,
        dims: ortOut[name].dims.join('x'), ...r});
    }
  }
  return rows;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  let failures = 0;
  console.log(`kiln ${a.kiln} vs onnxruntime-node ${ort.env.versions ? ort.env.versions.common : ''}`);
  console.log('| model | kiln | output | shape | rel. L2 vs ORT | max abs diff |');
  console.log('|---|---|---|---|---|---|');
  for (const model of a.models) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-peer-'));
    try {
      for (const r of await checkModel(a, model, work)) {
        const rel = r.sameLength ? r.rel : Infinity;
        if (!(rel <= a.tolerance || (r.sameLength && r.maxAbs <= a.atol))) ++failures;
        console.log(`| ${r.model} | ${r.kiln} | ${r.output} | ${r.dims} | ${rel.toExponential(2)} | ` +
                    `${r.maxAbs.toExponential(2)} |`);
      }
    } finally {
      fs.rmSync(work, {recursive: true, force: true});
    }
  }
  if (failures > 0) {
    console.error(`peer_check: ${failures} output(s) differ by more than rel ${a.tolerance} ` +
                  `and abs ${a.atol}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`peer_check: ${e.message}`);
  process.exit(1);
});
