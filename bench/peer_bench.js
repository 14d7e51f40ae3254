#!/usr/bin/env node
// ONNX Runtime peer of `kiln bench` (bench/run_peer_bench.sh).
//
//   node bench/peer_bench.js MODEL.onnx --input NAME=FILE.npy [--iterations N] [--warmup N]
//        [--threads N] [--output-dir DIR] [--json FILE]
//
// onnxruntime-node (bench/peer/node_modules, pinned by bench/peer/package-lock.json), CPU
// execution provider, intraOpNumThreads = --threads (default 2), interOpNumThreads 1,
// graphOptimizationLevel 'all', sequential execution. Times session.run() only (the inputs are
// built once), prints the same latency statistics as `kiln bench` and writes the outputs of the
// last run as .npy.
'use strict';
const fs = require('fs');
const path = require('path');
const ORT_DIR = path.join(__dirname, 'peer', 'node_modules', 'onnxruntime-node');
const ort = require(ORT_DIR);
const ORT_VERSION = require(path.join(ORT_DIR, 'package.json')).version;

const NPY_DTYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array],
  '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array], '|u1': ['uint8', Uint8Array],
  '|b1': ['bool', Uint8Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim())
      .filter((s) => s.length).map(Number);
  const [type, Ctor] = NPY_DTYPES[descr] || [];
  if (!type) throw new Error(`${file}: unsupported dtype ${descr}`);
  const off = hstart + hlen;
  const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return new ort.Tensor(type, new Ctor(bytes.buffer), shape);
}

function writeNpy(file, tensor) {
  const descr = Object.keys(NPY_DTYPES).find((k) => NPY_DTYPES[k][0] === tensor.type);
  if (!descr) throw new Error(`cannot write ${tensor.type} as .npy`);
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
}

function percentile(sorted, p) {  // linear interpolation, as numpy and `kiln bench`
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = s.length > 1 ?
      Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / (s.length - 1)) : 0;
  return {min: s[0], mean, median: percentile(s, 50), p90: percentile(s, 90),
          p95: percentile(s, 95), p99: percentile(s, 99), stddev: sd};
}

function parseArgs(argv) {
  const a = {inputs: [], iterations: 20, warmup: 3, threads: 2};
  for (let i = 0; i < argv.length; ++i) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--input': a.inputs.push(v()); break;
      case '--iterations': a.iterations = Number(v()); break;
      case '--warmup': a.warmup = Number(v()); break;
      case '--threads': a.threads = Number(v()); break;
      case '--output-dir': a.outputDir = v(); break;
      case '--json': a.json = v(); break;
      default:
        if (argv[i].startsWith('--') || a.model) throw new Error(`unexpected argument ${argv[i]}`);
        a.model = argv[i];
    }
  }
  if (!a.model) throw new Error('usage: peer_bench.js MODEL.onnx --input NAME=FILE.npy ...');
  return a;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'], intraOpNumThreads: a.threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
  const feeds = {};
  for (const spec of a.inputs) {
    const eq = spec.lastIndexOf('=');
    feeds[spec.slice(0, eq)] = readNpy(spec.slice(eq + 1));
  }
  let out;
  const t0 = process.hrtime.bigint();
  out = await session.run(feeds);
  const firstMs = Number(process.hrtime.bigint() - t0) / 1e6;
  for (let i = 1; i < a.warmup; ++i) out = await session.run(feeds);
  const ms = [];
  for (let i = 0; i < a.iterations; ++i) {
    const t = process.hrtime.bigint();
    out = await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const lat = stats(ms);
  const batch = Object.values(feeds)[0].dims[0] || 1;
  console.log(`model       ${a.model}\nruntime     onnxruntime-node ${ORT_VERSION}` +
              ` (intra-op threads ${a.threads}, graph optimization all)`);
  console.log(`latency     min ${lat.min.toFixed(3)}  mean ${lat.mean.toFixed(3)}  median ` +
              `${lat.median.toFixed(3)}  p90 ${lat.p90.toFixed(3)}  p95 ${lat.p95.toFixed(3)}  ` +
              `p99 ${lat.p99.toFixed(3)} ms  (CV ${(100 * lat.stddev / lat.mean).toFixed(1)}%)`);
  if (a.outputDir) {
    fs.mkdirSync(a.outputDir, {recursive: true});
    for (const [name, t] of Object.entries(out)) {
      writeNpy(path.join(a.outputDir, name.replace(/[^A-Za-z0-9._-]/g, '_') + '.npy'), t);
    }
  }
  if (a.json) {
    fs.writeFileSync(a.json, JSON.stringify({
      model: a.model, runtime: 'onnxruntime-node', version: ORT_VERSION, batch,
      precision: 'fp32', threads: a.threads, iterations: a.iterations, warmup: a.warmup,
      first_run_ms: firstMs, latency_ms: lat, throughput_per_s: 1000 * batch / lat.mean,
    }, null, 2) + '\n');
  }
}

main().catch((e) => { console.error(`peer_bench.js: ${e.message}`); process.exit(1); });
