#!/usr/bin/env node
'use strict';
// Peer check for kiln's TF.js importer: runs a TF.js graph model on the pure-JS CPU backend of
// TensorFlow.js (pinned 4.22.0, see package.json) and writes its outputs as .npy, so reference
// outputs for new fixtures never come from kiln itself.
//
//   npm ci                      # once, in this directory
//   node reference.js MODEL.json [--input NAME=FILE.npy ...] [FILE.npy ...]
//        [--outputs NAME,NAME] [--output-dir DIR] [--compare REF.npy,REF.npy --rtol R --atol A]
//
// Inputs: `NAME=FILE` pairs feed by tensor name ("input_1:0"); bare files are fed in the order
// of the model's inputs. uint8/int8/int16/int64 .npy inputs become int32 tensors (TF.js has no
// other integer dtype); float64 becomes float32. Outputs (default: the model's outputs, in
// its order) are written to DIR/output_K.npy; a summary goes to stdout as JSON. --compare
// checks the outputs against existing .npy files (|got-ref| <= atol + rtol*|ref|) and exits 1
// on a mismatch.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfconv = require('@tensorflow/tfjs-converter');
const { parseNpy, serializeNpy } = require('./npy');

function usage(msg) {
  if (msg) console.error(`reference.js: ${msg}`);
  console.error('usage: node reference.js MODEL.json [--input NAME=FILE.npy ...] [FILE.npy ...] ' +
                '[--outputs A,B] [--output-dir DIR] [--compare R0.npy,R1.npy --rtol R --atol A]');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { model: null, named: [], positional: [], outputs: null, outDir: '.', compare: null,
              rtol: 1e-4, atol: 1e-5 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => (i + 1 < argv.length ? argv[++i] : usage(`${arg} needs a value`));
    if (arg === '--input') {
      const v = next(); const eq = v.lastIndexOf('=');
      if (eq <= 0) usage(`--input wants NAME=FILE, got ${v}`);
      a.named.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else if (arg === '--outputs') a.outputs = next().split(',').filter((s) => s);
    else if (arg === '--output-dir') a.outDir = next();
    else if (arg === '--compare') a.compare = next().split(',');
    else if (arg === '--rtol') a.rtol = Number(next());
    else if (arg === '--atol') a.atol = Number(next());
    else if (arg === '-h' || arg === '--help') usage();
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else if (a.model === null) a.model = arg;
    else a.positional.push(arg);
  }
  if (!a.model) usage('no model.json given');
  return a;
}

// An IOHandler that reads model.json and its shards (confined to the model's directory).
function fileHandler(modelPath) {
  return {
    load: async () => {
      const dir = path.dirname(path.resolve(modelPath));
      const model = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      if (model.format !== undefined && model.format !== 'graph-model') {
        throw new Error(`${modelPath}: format ${model.format} is not 'graph-model'`);
      }
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest || []) {
        for (const p of group.paths) {
          const full = path.resolve(dir, p);
          if (path.isAbsolute(p) || !full.startsWith(dir + path.sep)) {
            throw new Error(`${modelPath}: weight path ${p} leaves the model's directory`);
          }
          buffers.push(fs.readFileSync(full));
        }
        specs.push(...group.weights);
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        modelInitializer: model.modelInitializer,
        initializerSignature: model.initializerSignature,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

function npyToTensor(file) {
  const { descr, shape, values } = parseNpy(fs.readFileSync(file), file);
  if (descr === 'f4' || descr === 'f8') return tf.tensor(Float32Array.from(values), shape, 'float32');
  if (descr === 'b1') return tf.tensor(Uint8Array.from(values.map(Number)), shape, 'bool');
  const ints = values.map((v) => {
    const n = Number(v);
    if (n < -2147483648 || n > 2147483647) throw new Error(`${file}: value ${v} does not fit int32`);
    return n;
  });
  return tf.tensor(Int32Array.from(ints), shape, 'int32');
}

function compare(got, refFile, rtol, atol) {
  const ref = parseNpy(fs.readFileSync(refFile), refFile);
  const g = got.dataSync();
  if (JSON.stringify(ref.shape) !== JSON.stringify(got.shape)) {
    return { file: refFile, ok: false, reason: `shape ${JSON.stringify(got.shape)} vs ${JSON.stringify(ref.shape)}` };
  }
  let maxAbs = 0, maxRel = 0, bad = 0;
  for (let i = 0; i < g.length; i++) {
    const r = Number(ref.values[i]);
    const d = Math.abs(Number(g[i]) - r);
    maxAbs = Math.max(maxAbs, d);
    if (r !== 0) maxRel = Math.max(maxRel, d / Math.abs(r));
    if (!(d <= atol + rtol * Math.abs(r))) bad++;
  }
  return { file: refFile, ok: bad === 0, max_abs: maxAbs, max_rel: maxRel, mismatches: bad };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tfconv.loadGraphModel(fileHandler(args.model));
  const inputNames = model.inputs.map((t) => t.name);
  const feeds = {};
  for (const [name, file] of args.named) feeds[name] = npyToTensor(file);
  if (args.positional.length > inputNames.length) usage(`the model has ${inputNames.length} inputs`);
  args.positional.forEach((file, k) => { feeds[inputNames[k]] = npyToTensor(file); });
  const outputNames = args.outputs || model.outputs.map((t) => t.name);
  let outs = await model.executeAsync(feeds, outputNames);
  if (!Array.isArray(outs)) outs = [outs];
  fs.mkdirSync(args.outDir, { recursive: true });
  const summary = { model: args.model, backend: tf.getBackend(), tfjs: tf.version_core,
                    inputs: Object.keys(feeds), outputs: [] };
  let failed = false;
  outs.forEach((t, k) => {
    const file = path.join(args.outDir, `output_${k}.npy`);
    fs.writeFileSync(file, serializeNpy(t.dataSync(), t.shape, t.dtype));
    const entry = { name: outputNames[k], file, dtype: t.dtype, shape: t.shape };
    if (args.compare && args.compare[k]) {
      entry.compare = compare(t, args.compare[k], args.rtol, args.atol);
      failed = failed || !entry.compare.ok;
    }
    summary.outputs.push(entry);
  });
  console.log(JSON.stringify(summary, null, 1));
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(`reference.js: ${e.stack || e}`); process.exit(1); });
