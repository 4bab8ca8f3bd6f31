/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {string: string}}), then the raw
 * little-endian data. kiln reads F32, F16, BF16, F64, I32, I64, U32, U8 and BOOL (converting to its
 * dtypes) and writes F32, F16, I32, U32 and BOOL. Files are written atomically (temp file + rename).
 */
import { floatToHalf, halfToFloat, type DType } from '../tensor/dtype.js';
import { gpu } from '../wgsl/device.js';
import { numel } from '../tensor/shape.js';
import { getDefaultDevice, tensor, type Tensor } from '../tensor/index.js';
import type { Device } from '../tensor/node.js';

const WRITE: Record<DType, string> = { f32: 'F32', f16: 'F16', i32: 'I32', u32: 'U32', bool: 'BOOL' };
const READ: Record<string, { bytes: number; dtype: DType }> = {
  F32: { bytes: 4, dtype: 'f32' }, F16: { bytes: 2, dtype: 'f16' }, BF16: { bytes: 2, dtype: 'f32' }, F64: { bytes: 8, dtype: 'f32' },
  I32: { bytes: 4, dtype: 'i32' }, I64: { bytes: 8, dtype: 'i32' }, U32: { bytes: 4, dtype: 'u32' }, U8: { bytes: 1, dtype: 'i32' },
  I8: { bytes: 1, dtype: 'i32' }, I16: { bytes: 2, dtype: 'i32' }, U16: { bytes: 2, dtype: 'i32' }, BOOL: { bytes: 1, dtype: 'bool' },
};

/** String metadata stored under `__metadata__`. */
export type Metadata = Record<string, string>;

/** Encodes tensors (reading them back from the device) as a safetensors byte array. */
export async function serialize(tensors: Record<string, Tensor>, metadata?: Metadata): Promise<Uint8Array<ArrayBuffer>> {
  const names = Object.keys(tensors).sort();
  for (const n of names) if (n === '__metadata__') throw new Error("save: '__metadata__' is reserved; pass metadata separately");
  if (metadata) for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`save: metadata values must be strings ('${k}' is ${typeof v})`);
  const datas = await Promise.all(names.map((n) => tensors[n]!.data()));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Uint8Array[] = [];
  names.forEach((n, i) => {
    const t = tensors[n]!;
    const d = datas[i]!;
    let bytes: Uint8Array;
    switch (t.dtype) {
      case 'f32': bytes = new Uint8Array(Float32Array.from(d).buffer); break;
      case 'f16': bytes = new Uint8Array(Uint16Array.from(d, (v) => floatToHalf(v)).buffer); break;
      case 'i32': bytes = new Uint8Array(Int32Array.from(d).buffer); break;
      case 'u32': bytes = new Uint8Array(Uint32Array.from(d).buffer); break;
      case 'bool': bytes = Uint8Array.from(d, (v) => (v ? 1 : 0)); break;
    }
    header[n] = { dtype: WRITE[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  });
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates a safetensors byte array; errors name `source` and the problem. */
export function parseHeader(bytes: Uint8Array, source = 'safetensors data'): { entries: Entry[]; metadata: Metadata; dataStart: number } {
  const fail = (msg: string): never => {
    throw new Error(`load ${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`file is too short (${bytes.length} bytes) to hold the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > bytes.length - 8) fail(`header length ${n} runs past the end of the file (${bytes.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  const dataStart = 8 + n;
  const dataSize = bytes.length - dataStart;
  const metadata: Metadata = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object') fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`__metadata__ value '${k}' is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') fail(`entry '${name}' is not an object`);
    const info = typeof e.dtype === 'string' ? READ[e.dtype] : undefined;
    if (!info) fail(`tensor '${name}' has unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(READ).join(', ')})`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[0] > off[1]) fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    const [begin, end] = off as [number, number];
    if (end > dataSize) fail(`tensor '${name}' ends at byte ${end} of the data but only ${dataSize} bytes follow the header (truncated file?)`);
    const expected = numel(e.shape as number[]) * info!.bytes;
    if (end - begin !== expected) fail(`tensor '${name}' of dtype ${e.dtype} and shape [${(e.shape as number[]).join(', ')}] needs ${expected} bytes but its offsets span ${end - begin}`);
    entries.push({ name, dtype: e.dtype as string, shape: e.shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (i > 0 && e.begin < sorted[i - 1]!.end) {
      const a = sorted[i - 1]!;
      fail(`tensors '${a.name}' [${a.begin}, ${a.end}) and '${e.name}' [${e.begin}, ${e.end}) overlap`);
    }
    if (e.begin !== covered) fail(`the data has a hole: bytes [${covered}, ${e.begin}) belong to no tensor`);
    covered = e.end;
  }
  if (covered !== dataSize) fail(`${dataSize - covered} bytes after the last tensor belong to no tensor`);
  return { entries, metadata, dataStart };
}

function decodeEntry(bytes: Uint8Array, e: Entry, dataStart: number): ArrayLike<number> {
  const start = dataStart + e.begin;
  const count = numel(e.shape);
  // a view on exactly this tensor's bytes (Node Buffers share a pool: honour byteOffset)
  const dv = new DataView(bytes.buffer, bytes.byteOffset + start, e.end - e.begin);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (e.dtype) {
      case 'F32': out[i] = dv.getFloat32(i * 4, true); break;
      case 'F64': out[i] = dv.getFloat64(i * 8, true); break;
      case 'F16': out[i] = halfToFloat(dv.getUint16(i * 2, true)); break;
      case 'BF16': { const b = dv.getUint16(i * 2, true); const f = new DataView(new ArrayBuffer(4)); f.setUint32(0, b << 16); out[i] = f.getFloat32(0); break; }
      case 'I32': out[i] = dv.getInt32(i * 4, true); break;
      case 'I64': out[i] = Number(dv.getBigInt64(i * 8, true)); break;
      case 'U32': out[i] = dv.getUint32(i * 4, true); break;
      case 'U8': case 'BOOL': out[i] = dv.getUint8(i); break;
      case 'I8': out[i] = dv.getInt8(i); break;
      case 'I16': out[i] = dv.getInt16(i * 2, true); break;
      case 'U16': out[i] = dv.getUint16(i * 2, true); break;
    }
  }
  return out;
}

/** Decodes safetensors bytes into tensors on `device`. */
export function deserialize(bytes: Uint8Array, opts: { source?: string; device?: Device } = {}): { tensors: Record<string, Tensor>; metadata: Metadata } {
  const { entries, metadata, dataStart } = parseHeader(bytes, opts.source);
  const tensors: Record<string, Tensor> = {};
  const device = opts.device ?? getDefaultDevice();
  for (const e of entries) {
    const values = decodeEntry(bytes, e, dataStart);
    const dtype = READ[e.dtype]!.dtype;
    // f16 stays f16 where the adapter stores it, else widens to f32
    const dt = dtype === 'f16' && device === 'webgpu' && !gpu().f16 ? 'f32' : dtype;
    tensors[e.name] = tensor(values, { shape: e.shape, dtype: dt, device }).keep();
  }
  return { tensors, metadata };
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined';

async function nodeFs(): Promise<typeof import('node:fs')> {
  const name = ['node', 'fs'].join(':'); // built at run time: bundlers (even minifying ones) leave it alone
  return import(/* @vite-ignore */ name);
}

/**
 * Saves tensors in the safetensors format. In Node with a path: writes the file atomically (a failed
 * save leaves any previous file intact) and resolves to the bytes written. Without a path (e.g. in a
 * browser): resolves to the bytes (wrap them in a Blob to download).
 */
export async function save(tensors: Record<string, Tensor>, path?: string, opts: { metadata?: Metadata } = {}): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await serialize(tensors, opts.metadata);
  if (path === undefined) return bytes;
  if (!isNode) throw new Error('save: writing to a path needs Node; in the browser call save(tensors) and download the returned bytes');
  const fs = await nodeFs();
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, path);
  } catch (e) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* already gone */ }
    throw new Error(`save ${path}: ${(e as Error).message}`);
  }
  return bytes;
}

/** Loads safetensors from a file path (Node), bytes, an ArrayBuffer or a Blob. */
export async function load(src: string | Uint8Array | ArrayBuffer | Blob, opts: { device?: Device } = {}): Promise<Record<string, Tensor>> {
  return (await loadWithMetadata(src, opts)).tensors;
}

/** Like `load`, also returning `__metadata__`. */
export async function loadWithMetadata(src: string | Uint8Array | ArrayBuffer | Blob, opts: { device?: Device } = {}): Promise<{ tensors: Record<string, Tensor>; metadata: Metadata }> {
  let bytes: Uint8Array;
  let source = 'safetensors data';
  if (typeof src === 'string') {
    if (!isNode) throw new Error('load: reading a path needs Node; in the browser pass an ArrayBuffer or Blob (e.g. from fetch or a file input)');
    const fs = await nodeFs();
    source = src;
    try {
      bytes = fs.readFileSync(src);
    } catch (e) {
      throw new Error(`load ${src}: ${(e as Error).message}`);
    }
  } else if (src instanceof Uint8Array) bytes = src;
  else if (src instanceof ArrayBuffer) bytes = new Uint8Array(src);
  else bytes = new Uint8Array(await src.arrayBuffer());
  return deserialize(bytes, { source, device: opts.device });
}
