/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {string: string}}), then the raw
 * little-endian data. kiln reads F32, F16, BF16, F64, I32, I64, U64, U32, U8 and BOOL (converting to its
 * dtypes; an integer that its dtype cannot hold exactly is an error naming the tensor, never wrapped)
 * and writes F32, F16, I32, U32 and BOOL. Files are written atomically (temp file + rename; temp files
 * left by a killed save are removed by the next save of the same file). Tensor names are kept as they
 * are, `__proto__` and `constructor` included (as own properties of the returned record).
 */
import { floatToHalf, halfToFloat, type DType } from '../tensor/dtype.js';
import { gpu } from '../wgsl/device.js';
import { numel } from '../tensor/shape.js';
import { getDefaultDevice, tensor, type Tensor } from '../tensor/index.js';
import type { Device } from '../tensor/node.js';

const WRITE: Record<DType, string> = { f32: 'F32', f16: 'F16', i32: 'I32', u32: 'U32', bool: 'BOOL' };
const READ: Record<string, { bytes: number; dtype: DType }> = {
  F32: { bytes: 4, dtype: 'f32' }, F16: { bytes: 2, dtype: 'f16' }, BF16: { bytes: 2, dtype: 'f32' }, F64: { bytes: 8, dtype: 'f32' },
  I32: { bytes: 4, dtype: 'i32' }, I64: { bytes: 8, dtype: 'i32' }, U64: { bytes: 8, dtype: 'i32' }, U32: { bytes: 4, dtype: 'u32' }, U8: { bytes: 1, dtype: 'i32' },
  I8: { bytes: 1, dtype: 'i32' }, I16: { bytes: 2, dtype: 'i32' }, U16: { bytes: 2, dtype: 'i32' }, BOOL: { bytes: 1, dtype: 'bool' },
};

/** String metadata stored under `__metadata__`. */
export type Metadata = Record<string, string>;

/** A save refused because a tensor holds NaN or ±∞ (`requireFinite`). */
export class NonFiniteTensorError extends Error {
  constructor(message: string, readonly tensor: string) {
    super(message);
    this.name = 'NonFiniteTensorError';
  }
}

/** Encodes tensors (reading them back from the device) as a safetensors byte array; `requireFinite` refuses NaN and ±∞. */
export async function serialize(tensors: Record<string, Tensor>, metadata?: Metadata, opts: { requireFinite?: boolean } = {}): Promise<Uint8Array<ArrayBuffer>> {
  const names = Object.keys(tensors).sort();
  for (const n of names) if (n === '__metadata__') throw new Error("save: '__metadata__' is reserved; pass metadata separately");
  if (metadata) for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`save: metadata values must be strings ('${k}' is ${typeof v})`);
  const datas = await Promise.all(names.map((n) => tensors[n]!.data()));
  if (opts.requireFinite) {
    names.forEach((n, i) => {
      const d = datas[i]!;
      if (tensors[n]!.dtype !== 'f32' && tensors[n]!.dtype !== 'f16') return;
      for (let j = 0; j < d.length; j++) {
        if (!Number.isFinite(d[j]!)) throw new NonFiniteTensorError(`save: tensor '${n}' holds ${d[j]} at element ${j}; nothing was written`, n);
      }
    });
  }
  // entries are defined, not assigned: a tensor named `__proto__` stays an entry instead of setting the prototype
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
    defineEntry(header, n, { dtype: WRITE[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] });
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

/** Defines `obj[name] = value` as an own enumerable property (safe for `__proto__`). */
function defineEntry<T>(obj: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

/** Parses and validates a safetensors byte array; errors name `source` and the problem. */
export function parseHeader(bytes: Uint8Array, source = 'safetensors data'): { entries: Entry[]; metadata: Metadata; dataStart: number } {
  return parseHeaderOf(bytes, bytes.length, source);
}

/** Reads the header length of a file's first 8 bytes (of a file of `fileSize` bytes), or fails naming `source`. */
function headerLength(head: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new Error(`load ${source}: file is too short (${fileSize} bytes) to hold the 8-byte header length`);
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  if (n > fileSize - 8) throw new Error(`load ${source}: header length ${n} runs past the end of the file (${fileSize} bytes)`);
  return n;
}

/**
 * Parses and validates a header: `head` holds at least the first 8 + N bytes of a file of `fileSize`
 * bytes (the data itself is not needed, so a header can be checked without reading the tensors).
 */
function parseHeaderOf(head: Uint8Array, fileSize: number, source: string): { entries: Entry[]; metadata: Metadata; dataStart: number } {
  const fail = (msg: string): never => {
    throw new Error(`load ${source}: ${msg}`);
  };
  const n = headerLength(head, fileSize, source);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + n)));
  } catch (e) {
    return fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const metadata: Metadata = {};
  const entries: Entry[] = [];
  // JSON.parse keeps a key `__proto__` as an own property, and Object.entries lists it
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object') fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as object)) {
        if (typeof v !== 'string') fail(`__metadata__ value '${k}' is not a string`);
        defineEntry(metadata, k, v as string);
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

/**
 * A 64-bit integer as the i32 kiln stores it: a value beyond ±2^53 (not exactly a JS number) or beyond
 * the i32 range is an error naming the tensor and the element, instead of a wrapped value.
 */
function exactInt(v: bigint, e: Entry, i: number, source: string): number {
  if (v >= -(2n ** 31n) && v < 2n ** 31n) return Number(v);
  const beyond = v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? ' (beyond 2^53, so not even exactly representable as a JS number)' : '';
  throw new Error(`load ${source}: tensor '${e.name}' (${e.dtype}) holds ${v} at element ${i}, outside the range of i32 that kiln loads ${e.dtype} into [${-(2 ** 31)}, ${2 ** 31 - 1}]${beyond}`);
}

function decodeEntry(bytes: Uint8Array, e: Entry, dataStart: number, source: string): ArrayLike<number> {
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
      case 'I64': out[i] = exactInt(dv.getBigInt64(i * 8, true), e, i, source); break;
      case 'U64': out[i] = exactInt(dv.getBigUint64(i * 8, true), e, i, source); break;
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
  const source = opts.source ?? 'safetensors data';
  const { entries, metadata, dataStart } = parseHeader(bytes, source);
  const tensors: Record<string, Tensor> = {};
  const device = opts.device ?? getDefaultDevice();
  try {
    for (const e of entries) {
      const values = decodeEntry(bytes, e, dataStart, source);
      const dtype = READ[e.dtype]!.dtype;
      // f16 stays f16 where the adapter stores it, else widens to f32
      const dt = dtype === 'f16' && device === 'webgpu' && !gpu().f16 ? 'f32' : dtype;
      defineEntry(tensors, e.name, tensor(values, { shape: e.shape, dtype: dt, device }).keep());
    }
  } catch (err) {
    // a value that does not fit its dtype: free what was made before it
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined';

async function nodeFs(): Promise<typeof import('node:fs')> {
  const name = ['node', 'fs'].join(':'); // built at run time: bundlers (even minifying ones) leave it alone
  return import(/* @vite-ignore */ name);
}

/** Options of `save`. */
export interface SaveOptions {
  metadata?: Metadata;
  /** Refuse to write (throwing an error that names the tensor) when a float tensor holds NaN or ±∞; default false. */
  requireFinite?: boolean;
}

/**
 * Removes the temporary files that saves of `path` killed between writing and renaming left beside it
 * (`<name>.tmp-<pid>-<time>`), except those of a process still running (it may be saving right now).
 */
function removeStaleTemps(fs: typeof import('node:fs'), path: string): void {
  const slash = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  const dir = slash < 0 ? '.' : path.slice(0, slash) || '/';
  const base = path.slice(slash + 1);
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.tmp-(\\d+)-[0-9a-z]+$`);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return; // a missing directory: the write itself reports it
  }
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    // this process writes and renames with no await between, so a temp file with its pid is stale too
    if (pid !== process.pid) {
      try {
        process.kill(pid, 0);
        continue; // alive (possibly saving this very file)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue; // EPERM: alive, not ours
      }
    }
    try { fs.rmSync(`${dir}/${name}`, { force: true }); } catch { /* removed by someone else */ }
  }
}

/**
 * Saves tensors in the safetensors format. In Node with a path: writes the file atomically (a failed
 * save leaves any previous file intact; temp files of killed saves of the same path are removed) and
 * resolves to the bytes written. Without a path (e.g. in a browser): resolves to the bytes (wrap them in
 * a Blob to download).
 */
export async function save(tensors: Record<string, Tensor>, path?: string, opts: SaveOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await serialize(tensors, opts.metadata, { requireFinite: opts.requireFinite });
  } catch (e) {
    throw path === undefined || !(e instanceof NonFiniteTensorError) ? e : new NonFiniteTensorError(`save ${path}: ${e.message.replace(/^save: /, '')}`, e.tensor);
  }
  if (path === undefined) return bytes;
  if (!isNode) throw new Error('save: writing to a path needs Node; in the browser call save(tensors) and download the returned bytes');
  const fs = await nodeFs();
  removeStaleTemps(fs, path);
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
      throw fileError(src, e);
    }
  } else if (src instanceof Uint8Array) bytes = src;
  else if (src instanceof ArrayBuffer) bytes = new Uint8Array(src);
  else bytes = new Uint8Array(await src.arrayBuffer());
  return deserialize(bytes, { source, device: opts.device });
}

/** A file-system error of reading `path`, said plainly (the code kept for searching). */
function fileError(path: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  const what = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a safetensors file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : null;
  return new Error(`load ${path}: ${what ? `${what} (${code})` : (e as Error).message}`);
}

/** What `loadHeader` returns: each tensor's name, safetensors dtype and shape, and `__metadata__`. */
export interface SafetensorsHeader {
  tensors: { name: string; dtype: string; shape: number[] }[];
  metadata: Metadata;
}

/**
 * The calls of Node's `node:fs` the header reader makes (declared here so the package's types do not need
 * Node's type declarations).
 */
export interface HeaderFs {
  statSync(path: string): { isDirectory(): boolean };
  openSync(path: string, flags: string): number;
  fstatSync(fd: number): { size: number };
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  closeSync(fd: number): void;
}

/**
 * Reads and validates the header of the safetensors file `path` through `fs` (Node's `node:fs`),
 * without reading the tensors. Errors name the file and the problem, as `load`'s do.
 */
export function readHeaderSync(fs: HeaderFs, path: string): SafetensorsHeader {
  let fd: number;
  try {
    if (fs.statSync(path).isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw fileError(path, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(8);
    fs.readSync(fd, head, 0, Math.min(8, size), 0);
    const n = headerLength(head, size, path);
    const all = new Uint8Array(8 + n);
    all.set(head);
    for (let got = 0; got < n;) {
      const r = fs.readSync(fd, all, 8 + got, n - got, 8 + got);
      if (r <= 0) throw new Error(`load ${path}: the file ended while reading its header`);
      got += r;
    }
    const { entries, metadata } = parseHeaderOf(all, size, path);
    return { tensors: entries.map(({ name, dtype, shape }) => ({ name, dtype, shape })), metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The header of a safetensors file (Node): tensor names, dtypes, shapes and metadata, validated like
 * `load` validates them (offsets against the file's size included) but without reading the tensors.
 */
export async function loadHeader(path: string): Promise<SafetensorsHeader> {
  if (!isNode) throw new Error('loadHeader: reading a path needs Node');
  return readHeaderSync(await nodeFs(), path);
}
