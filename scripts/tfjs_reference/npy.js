'use strict';
// Minimal NumPy .npy reader/writer (format 1.0-3.0, C order) for the TF.js peer check.
// Reads little-endian or byte-order-free f4 f8 i1 i2 i4 i8 u1 u2 u4 b1; writes version 1.0.

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);  // \x93NUMPY

const READERS = {
  f4: [4, (b, o) => b.readFloatLE(o)],
  f8: [8, (b, o) => b.readDoubleLE(o)],
  i1: [1, (b, o) => b.readInt8(o)],
  i2: [2, (b, o) => b.readInt16LE(o)],
  i4: [4, (b, o) => b.readInt32LE(o)],
  i8: [8, (b, o) => b.readBigInt64LE(o)],
  u1: [1, (b, o) => b.readUInt8(o)],
  u2: [2, (b, o) => b.readUInt16LE(o)],
  u4: [4, (b, o) => b.readUInt32LE(o)],
  b1: [1, (b, o) => b.readUInt8(o) !== 0],
};

// Returns {descr, shape, values}: descr without byte order ('f4', 'i8', ...), values a plain
// array (BigInt for 8-byte integers).
function parseNpy(buf, what = 'npy') {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${what}: not a .npy file`);
  const major = buf[6];
  let headerLen, start;
  if (major === 1) { headerLen = buf.readUInt16LE(8); start = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error(`${what}: truncated header`);
    headerLen = buf.readUInt32LE(8); start = 12;
  } else throw new Error(`${what}: unsupported .npy version ${major}`);
  if (start + headerLen > buf.length) throw new Error(`${what}: truncated header`);
  const header = buf.subarray(start, start + headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const descrM = /'descr'\s*:\s*'([<>|=]?)([a-z]\d+)'/.exec(header);
  const fortranM = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descrM || !fortranM || !shapeM) throw new Error(`${what}: malformed header ${header}`);
  if (fortranM[1] === 'True') throw new Error(`${what}: Fortran order is not supported`);
  if (descrM[1] === '>' && descrM[2][1] !== '1') throw new Error(`${what}: big-endian data is not supported`);
  const descr = descrM[2];
  if (!(descr in READERS)) throw new Error(`${what}: dtype ${descr} is not supported`);
  const shape = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${what}: bad shape`);
  const count = shape.reduce((a, b) => a * b, 1);
  const [size, read] = READERS[descr];
  const dataStart = start + headerLen;
  if (buf.length - dataStart < count * size) throw new Error(`${what}: truncated data`);
  const values = new Array(count);
  for (let i = 0; i < count; i++) values[i] = read(buf, dataStart + i * size);
  return { descr, shape, values };
}

// Serializes a typed array (Float32Array, Int32Array, Uint8Array for bool) as .npy 1.0.
function serializeNpy(typed, shape, dtype) {
  const descr = { float32: '<f4', int32: '<i4', bool: '|b1' }[dtype];
  if (!descr) throw new Error(`cannot write dtype ${dtype} as .npy`);
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const size = { float32: 4, int32: 4, bool: 1 }[dtype];
  const data = Buffer.alloc(typed.length * size);
  for (let i = 0; i < typed.length; i++) {
    if (dtype === 'float32') data.writeFloatLE(typed[i], i * 4);
    else if (dtype === 'int32') data.writeInt32LE(typed[i], i * 4);
    else data[i] = typed[i] ? 1 : 0;
  }
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

module.exports = { parseNpy, serializeNpy };
