/**
 * safetensors: files written byte by byte from the specification (https://github.com/huggingface/safetensors:
 * 8-byte little-endian u64 header size N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin,
 * end)}, "__metadata__": {str: str}} optionally padded with spaces, then the little-endian byte buffer),
 * kiln's reader and writer against them, validation errors, and the atomic file replacement.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as k from '../../src/index.ts';

let dir = '';
let hasF16 = false;

beforeAll(async () => {
  await k.init();
  hasF16 = k.deviceInfo().features.includes('shader-f16');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-safetensors-'));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// a writer from the specification, byte by byte (no kiln code)

/** u64 little endian, one byte at a time. */
function u64le(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) {
    out.push(n % 256);
    n = Math.floor(n / 256);
  }
  return out;
}

/** UTF-8 bytes of a string (TextEncoder is the platform's, not kiln's). */
const utf8 = (s: string) => Array.from(new TextEncoder().encode(s));

/** A file: header length, JSON header (space-padded to a multiple of 8 when `pad`), data bytes. */
function file(headerJson: string, data: number[], opts: { pad?: boolean; declaredLength?: number } = {}): Uint8Array<ArrayBuffer> {
  const h = utf8(headerJson);
  if (opts.pad ?? true) while (h.length % 8) h.push(0x20);
  return Uint8Array.from([...u64le(opts.declaredLength ?? h.length), ...h, ...data]);
}

/** Little-endian bytes of 32-bit two's-complement integers. */
const i32le = (xs: number[]) => xs.flatMap((v) => { const u = v >>> 0; return [u & 0xff, (u >>> 8) & 0xff, (u >>> 16) & 0xff, u >>> 24]; });
/** Little-endian bytes of 16-bit patterns. */
const u16le = (xs: number[]) => xs.flatMap((v) => [v & 0xff, v >>> 8]);

let seq = 0;
function writeTemp(bytes: Uint8Array, name = `f${seq++}.safetensors`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

async function arr(t: k.Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

// The reference file. Data layout (byte offsets into the data buffer), deliberately not in header order
// and with a 4-byte float at an odd offset:
//   [0, 3)   mask  BOOL [3]        01 00 01
//   [3, 15)  a     F32  [3]        1.0, −2.5, 0.1f
//   [15, 27) c     I32  [3]        −1, 2147483647, −2147483648
//   [27, 35) h     F16  [2, 2]     1.0, −2.0, 65504, 2^−24
//   [35, 39) u8    U8   [2, 2]     0, 255, 7, 128
//   [39, 43) s     F32  []         0.5
const F32_BYTES = {
  one: [0x00, 0x00, 0x80, 0x3f], // 0x3F800000
  m2_5: [0x00, 0x00, 0x20, 0xc0], // 0xC0200000
  tenth: [0xcd, 0xcc, 0xcc, 0x3d], // 0x3DCCCCCD = 0.100000001490116…
  half: [0x00, 0x00, 0x00, 0x3f], // 0x3F000000
};
const REF_HEADER = JSON.stringify({
  __metadata__: { format: 'pt', note: 'héllo ✓' },
  a: { dtype: 'F32', shape: [3], data_offsets: [3, 15] },
  c: { dtype: 'I32', shape: [3], data_offsets: [15, 27] },
  h: { dtype: 'F16', shape: [2, 2], data_offsets: [27, 35] },
  mask: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] },
  s: { dtype: 'F32', shape: [], data_offsets: [39, 43] },
  u8: { dtype: 'U8', shape: [2, 2], data_offsets: [35, 39] },
});
const REF_DATA = [
  0x01, 0x00, 0x01,
  ...F32_BYTES.one, ...F32_BYTES.m2_5, ...F32_BYTES.tenth,
  ...i32le([-1, 2147483647, -2147483648]),
  ...u16le([0x3c00, 0xc000, 0x7bff, 0x0001]),
  0, 255, 7, 128,
  ...F32_BYTES.half,
];

async function checkReference(tensors: Record<string, k.Tensor>): Promise<void> {
  expect(Object.keys(tensors).sort()).toEqual(['a', 'c', 'h', 'mask', 's', 'u8']);
  const t = tensors;
  expect([t.a!.dtype, t.a!.shape]).toEqual(['f32', [3]]);
  expect(await arr(t.a!)).toEqual([1, -2.5, 0.10000000149011612]);
  expect([t.c!.dtype, t.c!.shape]).toEqual(['i32', [3]]);
  expect(await arr(t.c!)).toEqual([-1, 2147483647, -2147483648]);
  expect(t.h!.dtype).toBe(hasF16 || t.h!.device === 'cpu' ? 'f16' : 'f32');
  expect(t.h!.shape).toEqual([2, 2]);
  expect(await t.h!.tolist()).toEqual([[1, -2], [65504, 2 ** -24]]);
  expect([t.mask!.dtype, t.mask!.shape]).toEqual(['bool', [3]]);
  expect(await t.mask!.tolist()).toEqual([true, false, true]);
  expect([t.u8!.dtype, t.u8!.shape]).toEqual(['i32', [2, 2]]); // U8 widens to i32
  expect(await t.u8!.tolist()).toEqual([[0, 255], [7, 128]]);
  expect(t.s!.shape).toEqual([]);
  expect(await t.s!.item()).toBe(0.5);
}

describe('reading files written from the specification', () => {
  it('k.load(bytes) reads F32, F16, I32, U8, BOOL and a scalar with their dtypes, shapes and values', async () => {
    await checkReference(await k.load(file(REF_HEADER, REF_DATA)));
  });

  it('k.load(path) reads the same file from disk', async () => {
    const p = writeTemp(file(REF_HEADER, REF_DATA));
    await checkReference(await k.load(p));
  });

  it('a Node Buffer source (what fs.readFileSync returns) decodes like a plain Uint8Array', async () => {
    // Buffer#slice is a view, not a copy; a pooled Buffer also has byteOffset ≠ 0
    const viaBuffer = k.deserialize(Buffer.from(file(REF_HEADER, REF_DATA)));
    await checkReference(viaBuffer.tensors);
  });

  it('k.loadWithMetadata returns __metadata__ (UTF-8 strings); bytes, ArrayBuffer and Blob sources work', async () => {
    const bytes = file(REF_HEADER, REF_DATA);
    const p = writeTemp(bytes);
    const { tensors, metadata } = await k.loadWithMetadata(p);
    expect(metadata).toEqual({ format: 'pt', note: 'héllo ✓' });
    expect(Object.keys(tensors).sort()).toEqual(['a', 'c', 'h', 'mask', 's', 'u8']);
    const fromBytes = await k.loadWithMetadata(bytes);
    expect(fromBytes.metadata).toEqual({ format: 'pt', note: 'héllo ✓' });
    await checkReference(fromBytes.tensors);
    await checkReference(await k.load(bytes.slice().buffer));
    await checkReference(await k.load(new Blob([bytes])));
    // a view into a larger buffer (byteOffset ≠ 0)
    const big = new Uint8Array(bytes.length + 5);
    big.set(bytes, 5);
    await checkReference(await k.load(big.subarray(5)));
    // onto the float64 cpu reference device
    const cpu = await k.load(bytes, { device: 'cpu' });
    expect(cpu.a!.device).toBe('cpu');
    await checkReference(cpu);
  });

  it('an unpadded header and a file without metadata or tensors are valid', async () => {
    const hdr = '{"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}'; // 54 bytes: not a multiple of 8
    const r = await k.loadWithMetadata(file(hdr, i32le([258]), { pad: false }));
    expect(await arr(r.tensors.x!)).toEqual([258]);
    expect(r.metadata).toEqual({});
    const empty = await k.loadWithMetadata(file('{}', []));
    expect(empty).toEqual({ tensors: {}, metadata: {} });
  });

  it('also reads BF16, F64, I64, U32, I8, I16, U16 (converted to kiln dtypes)', async () => {
    const f64 = new DataView(new ArrayBuffer(16));
    f64.setFloat64(0, Math.PI, true);
    f64.setFloat64(8, -1e-3, true);
    const hdr = JSON.stringify({
      bf: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] },
      d: { dtype: 'F64', shape: [2], data_offsets: [6, 22] },
      l: { dtype: 'I64', shape: [2], data_offsets: [22, 38] },
      u: { dtype: 'U32', shape: [1], data_offsets: [38, 42] },
      b: { dtype: 'I8', shape: [2], data_offsets: [42, 44] },
      w: { dtype: 'I16', shape: [1], data_offsets: [44, 46] },
      v: { dtype: 'U16', shape: [1], data_offsets: [46, 48] },
    });
    const data = [
      ...u16le([0x3f80, 0xc040, 0x4049]), // bf16: 1, −3, 3.140625
      ...Array.from(new Uint8Array(f64.buffer)),
      0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // −5
      0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, // 2^30
      0xff, 0xff, 0xff, 0xff, // u32 4294967295
      0x80, 0x7f, // i8 −128, 127
      0x00, 0x80, // i16 −32768
      0xff, 0xff, // u16 65535
    ];
    const t = await k.load(file(hdr, data));
    expect([t.bf!.dtype, await arr(t.bf!)]).toEqual(['f32', [1, -3, 3.140625]]);
    expect(t.d!.dtype).toBe('f32');
    expect(await arr(t.d!)).toEqual([Math.fround(Math.PI), Math.fround(-1e-3)]);
    expect([t.l!.dtype, await arr(t.l!)]).toEqual(['i32', [-5, 2 ** 30]]);
    expect([t.u!.dtype, await arr(t.u!)]).toEqual(['u32', [4294967295]]);
    expect(await arr(t.b!)).toEqual([-128, 127]);
    expect(await arr(t.w!)).toEqual([-32768]);
    expect(await arr(t.v!)).toEqual([65535]);
  });
});

// ---------------------------------------------------------------------------------------------

/** Parses a file with the specification only (no kiln code). */
function parseSpec(bytes: Uint8Array): { n: number; header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; data: Uint8Array; raw: string } {
  let n = 0;
  for (let i = 7; i >= 0; i--) n = n * 256 + bytes[i]!;
  const raw = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  return { n, header: JSON.parse(raw), data: bytes.subarray(8 + n), raw };
}

describe('k.save → file → k.load round trip', () => {
  it('f32, i32, u32, bool (and metadata): the file follows the specification byte for byte', async () => {
    const p = path.join(dir, 'roundtrip.safetensors');
    const w = [1.5, -0.1, 3e-8, 65536.25, -0, 7];
    const tensors = {
      'layer.weight': k.tensor(w, { shape: [2, 3] }),
      ids: k.tensor(Int32Array.from([-7, 0, 2147483647])),
      big: k.tensor(Uint32Array.from([4294967295, 1])),
      mask: k.tensor([true, false, false, true]),
    };
    const returned = await k.save(tensors, p, { metadata: { epoch: '3', lr: '0.001' } });
    const bytes = new Uint8Array(fs.readFileSync(p));
    expect(Array.from(returned)).toEqual(Array.from(bytes));
    const { n, header, data, raw } = parseSpec(bytes);
    expect((8 + n) % 8).toBe(0); // data starts 8-aligned
    expect(raw.trimEnd().endsWith('}')).toBe(true);
    expect(raw.startsWith('{')).toBe(true);
    expect((header as Record<string, unknown>).__metadata__).toEqual({ epoch: '3', lr: '0.001' });
    const entries = Object.entries(header).filter(([name]) => name !== '__metadata__');
    expect(Object.fromEntries(entries.map(([name, e]) => [name, [e.dtype, e.shape]]))).toEqual({
      'layer.weight': ['F32', [2, 3]], ids: ['I32', [3]], big: ['U32', [2]], mask: ['BOOL', [4]],
    });
    // the data buffer is covered exactly, without holes or overlaps
    const spans = entries.map(([, e]) => e.data_offsets).sort((x, y) => x[0] - y[0]);
    let end = 0;
    for (const [b, e] of spans) { expect(b).toBe(end); end = e; }
    expect(end).toBe(data.length);
    // raw little-endian data
    const view = (name: string) => { const [b, e] = header[name]!.data_offsets; return new DataView(data.slice(b, e).buffer); };
    const fw = view('layer.weight');
    expect(Array.from({ length: 6 }, (_, i) => fw.getFloat32(i * 4, true))).toEqual(w.map(Math.fround));
    expect(Object.is(fw.getFloat32(16, true), -0)).toBe(true);
    const fi = view('ids');
    expect([0, 1, 2].map((i) => fi.getInt32(i * 4, true))).toEqual([-7, 0, 2147483647]);
    const fu = view('big');
    expect([0, 1].map((i) => fu.getUint32(i * 4, true))).toEqual([4294967295, 1]);
    expect(Array.from(data.slice(...header.mask!.data_offsets))).toEqual([1, 0, 0, 1]);
    // and back through kiln: from the file's bytes, then from the path
    for (const src of [Uint8Array.from(bytes), p]) {
      const { tensors: back, metadata } = await k.loadWithMetadata(src);
      const what = typeof src === 'string' ? 'path' : 'bytes';
      expect(metadata, what).toEqual({ epoch: '3', lr: '0.001' });
      expect(back['layer.weight']!.shape, what).toEqual([2, 3]);
      expect(await arr(back['layer.weight']!), what).toEqual(w.map(Math.fround));
      expect([back.ids!.dtype, await arr(back.ids!)], what).toEqual(['i32', [-7, 0, 2147483647]]);
      expect([back.big!.dtype, await arr(back.big!)], what).toEqual(['u32', [4294967295, 1]]);
      expect([back.mask!.dtype, await back.mask!.tolist()], what).toEqual(['bool', [true, false, false, true]]);
    }
  });

  it('f16 (needs shader-f16): stored as IEEE binary16 bits, round to nearest even', async () => {
    if (!hasF16) {
      // without the feature kiln refuses f16 tensors with a clear message
      expect(() => k.tensor([1], { dtype: 'f16' })).toThrow(/shader-f16/);
      return;
    }
    const p = path.join(dir, 'f16.safetensors');
    const vals = [1, 0.1, -65504, 2 ** -14, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, -0];
    // binary16: 1 → 3C00; 0.1 → 2E66; −65504 → FBFF; 2^−14 → 0400 (smallest normal);
    // 1 + 2^−11 is a tie → even 3C00; 1 + 3·2^−11 is a tie → even 3C02; 2^−24 → 0001; −0 → 8000
    const bits = [0x3c00, 0x2e66, 0xfbff, 0x0400, 0x3c00, 0x3c02, 0x0001, 0x8000];
    await k.save({ h: k.tensor(vals, { dtype: 'f16' }) }, p);
    const bytes = Uint8Array.from(fs.readFileSync(p));
    const { header, data } = parseSpec(bytes);
    expect(header.h).toEqual({ dtype: 'F16', shape: [8], data_offsets: [0, 16] });
    expect(Array.from(data)).toEqual(u16le(bits));
    const decoded = [1, 0.0999755859375, -65504, 2 ** -14, 1, 1 + 2 ** -9, 2 ** -24, -0];
    for (const src of [bytes, p]) {
      const back = await k.load(src);
      expect(back.h!.dtype).toBe('f16');
      expect(await arr(back.h!), typeof src === 'string' ? 'path' : 'bytes').toEqual(decoded);
    }
  });

  it('serialize/deserialize in memory; save without a path returns the bytes', async () => {
    const t = { x: k.tensor([[1, 2], [3, 4]]) };
    const a = await k.serialize(t, { k: 'v' });
    const b = await k.save(t, undefined, { metadata: { k: 'v' } });
    expect(Array.from(b)).toEqual(Array.from(a));
    const { header } = parseSpec(a);
    expect(header.x).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    const r = k.deserialize(a);
    expect(r.metadata).toEqual({ k: 'v' });
    expect(await r.tensors.x!.tolist()).toEqual([[1, 2], [3, 4]]);
  });

  it('a module state dict survives save → load → loadStateDict', async () => {
    const p = path.join(dir, 'model.safetensors');
    k.manualSeed(3);
    const a = new k.nn.Sequential(new k.nn.Linear(3, 4), new k.nn.Tanh(), new k.nn.Linear(4, 2));
    const want = await Promise.all(a.parameters().map(arr));
    await k.save(a.stateDict(), p);
    const { header } = parseSpec(new Uint8Array(fs.readFileSync(p)));
    expect(Object.keys(header).sort()).toEqual(['0.bias', '0.weight', '2.bias', '2.weight']);
    expect(header['0.weight']!.shape).toEqual([4, 3]);
    k.manualSeed(4);
    const b = new k.nn.Sequential(new k.nn.Linear(3, 4), new k.nn.Tanh(), new k.nn.Linear(4, 2));
    b.loadStateDict(await k.load(p));
    expect(await Promise.all(b.parameters().map(arr))).toEqual(want);
  });
});

// ---------------------------------------------------------------------------------------------

describe('invalid files: the error names the file and the problem', () => {
  const ok = () => file(REF_HEADER, REF_DATA);
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  async function loadError(bytes: Uint8Array): Promise<{ path: string; message: string }> {
    const p = writeTemp(bytes);
    try {
      await k.load(p);
    } catch (e) {
      return { path: p, message: (e as Error).message };
    }
    throw new Error(`loading ${p} did not fail`);
  }

  it('truncated data', async () => {
    const b = ok();
    const { path: p, message } = await loadError(b.subarray(0, b.length - 2));
    expect(message).toMatch(new RegExp(`^load ${esc(p)}: tensor 's' ends at byte 43 of the data but only 41 bytes follow the header \\(truncated file\\?\\)`));
  });

  it('header length past the end of the file', async () => {
    const b = file(REF_HEADER, REF_DATA, { declaredLength: 1_000_000 });
    const { path: p, message } = await loadError(b);
    expect(message).toMatch(new RegExp(`^load ${esc(p)}: header length 1000000 runs past the end of the file \\(${b.length} bytes\\)`));
    // a file too short to hold the length itself
    const short = await loadError(Uint8Array.from([1, 0, 0]));
    expect(short.message).toMatch(new RegExp(`^load ${esc(short.path)}: file is too short \\(3 bytes\\)`));
  });

  it('overlapping offsets', async () => {
    const hdr = JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    });
    const { path: p, message } = await loadError(file(hdr, new Array(12).fill(0)));
    expect(message).toMatch(new RegExp(`^load ${esc(p)}: tensors 'a' \\[0, 8\\) and 'b' \\[4, 12\\) overlap`));
  });

  it('offsets out of range or malformed', async () => {
    const past = JSON.stringify({ a: { dtype: 'I32', shape: [2], data_offsets: [16, 24] } });
    const r1 = await loadError(file(past, new Array(8).fill(0)));
    expect(r1.message).toMatch(new RegExp(`^load ${esc(r1.path)}: tensor 'a' ends at byte 24 of the data but only 8 bytes follow the header`));
    for (const off of ['[8, 0]', '[-4, 4]', '[0]', '"0-4"', '[0, 4.5]']) {
      const hdr = `{"a":{"dtype":"U8","shape":[4],"data_offsets":${off}}}`;
      const r = await loadError(file(hdr, [1, 2, 3, 4]));
      expect(r.message, off).toMatch(new RegExp(`^load ${esc(r.path)}: tensor 'a' has invalid data_offsets`));
    }
  });

  it('unknown dtype', async () => {
    const hdr = JSON.stringify({ a: { dtype: 'F8_E9M9', shape: [1], data_offsets: [0, 1] } });
    const { path: p, message } = await loadError(file(hdr, [0]));
    expect(message).toMatch(new RegExp(`^load ${esc(p)}: tensor 'a' has unknown dtype "F8_E9M9" \\(known: .*F32.*\\)`));
  });

  it('size / shape mismatch; invalid shape', async () => {
    const hdr = JSON.stringify({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } });
    const { path: p, message } = await loadError(file(hdr, new Array(20).fill(0)));
    expect(message).toMatch(new RegExp(`^load ${esc(p)}: tensor 'w' of dtype F32 and shape \\[2, 3\\] needs 24 bytes but its offsets span 20`));
    const bad = JSON.stringify({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } });
    const r = await loadError(file(bad, new Array(8).fill(0)));
    expect(r.message).toMatch(new RegExp(`^load ${esc(r.path)}: tensor 'w' has an invalid shape \\[2,-1\\]`));
  });

  it('invalid JSON, invalid UTF-8, a header that is not an object, bad metadata', async () => {
    const r1 = await loadError(file('{"a": {"dtype": "F32",', []));
    expect(r1.message).toMatch(new RegExp(`^load ${esc(r1.path)}: header is not valid UTF-8 JSON`));
    const utf = Uint8Array.from([...u64le(8), 0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff\xfe":1}
    const r2 = await loadError(utf);
    expect(r2.message).toMatch(new RegExp(`^load ${esc(r2.path)}: header is not valid UTF-8 JSON`));
    const r3 = await loadError(file('[1, 2]', []));
    expect(r3.message).toMatch(new RegExp(`^load ${esc(r3.path)}: header must be a JSON object`));
    const r4 = await loadError(file('{"__metadata__":{"epoch":3}}', []));
    expect(r4.message).toMatch(new RegExp(`^load ${esc(r4.path)}: __metadata__ value 'epoch' is not a string`));
  });

  it('a missing file', async () => {
    const p = path.join(dir, 'does-not-exist.safetensors');
    await expect(k.load(p)).rejects.toThrow(new RegExp(`^load ${esc(p)}: .*ENOENT`));
  });

  it('in-memory sources name "safetensors data"', () => {
    expect(() => k.deserialize(Uint8Array.from([1, 2]))).toThrow(/^load safetensors data: file is too short/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('atomic writes', () => {
  const leftovers = (d: string) => fs.readdirSync(d).filter((f) => f.includes('.tmp-'));

  it('saving into a missing directory throws (naming the path) and leaves no temporary file', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const p = path.join(sub, 'missing', 'x.safetensors');
    await expect(k.save({ a: k.tensor([1]) }, p)).rejects.toThrow(new RegExp(`^save ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*ENOENT`));
    expect(fs.readdirSync(sub)).toEqual([]);
  });

  it('saving over an existing file replaces it, with no temporary file left', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const p = path.join(sub, 'ckpt.safetensors');
    await k.save({ a: k.tensor([1, 2, 3]) }, p);
    await k.save({ b: k.tensor(Int32Array.from([9])) }, p, { metadata: { v: '2' } });
    expect(fs.readdirSync(sub)).toEqual(['ckpt.safetensors']);
    const { header, data } = parseSpec(new Uint8Array(fs.readFileSync(p)));
    expect(header).toEqual({ __metadata__: { v: '2' }, b: { dtype: 'I32', shape: [1], data_offsets: [0, 4] } });
    expect(Array.from(data)).toEqual(i32le([9]));
  });

  it('a failed save leaves the previous file byte-identical (disposed tensor, reserved name, bad metadata, rename failure)', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const p = path.join(sub, 'ckpt.safetensors');
    await k.save({ w: k.tensor([0.25, -4]), n: k.tensor(Int32Array.from([5])) }, p, { metadata: { step: '10' } });
    const before = fs.readFileSync(p);
    const gone = k.tensor([1, 2]);
    gone.dispose();
    await expect(k.save({ w: k.tensor([7, 7]), x: gone }, p)).rejects.toThrow(/disposed/);
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    await expect(k.save({ w: k.tensor([7, 7]), __metadata__: k.tensor([1]) }, p)).rejects.toThrow(/'__metadata__' is reserved/);
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    await expect(k.save({ w: k.tensor([7, 7]) }, p, { metadata: { step: 11 as unknown as string } })).rejects.toThrow(/metadata values must be strings \('step' is number\)/);
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    expect(leftovers(sub)).toEqual([]);
    // the rename itself fails (the target is a non-empty directory): the temporary file is removed
    const target = path.join(sub, 'adir');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep.txt'), 'x');
    await expect(k.save({ w: k.tensor([1]) }, target)).rejects.toThrow(new RegExp(`^save ${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    expect(leftovers(sub)).toEqual([]);
    expect(fs.readdirSync(target)).toEqual(['keep.txt']);
    // the original checkpoint still holds its old contents
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    const { header, data } = parseSpec(new Uint8Array(before));
    expect((header as Record<string, unknown>).__metadata__).toEqual({ step: '10' });
    const dv = new DataView(Uint8Array.from(data).buffer);
    const [wb] = header.w!.data_offsets, [nb] = header.n!.data_offsets;
    expect([dv.getFloat32(wb, true), dv.getFloat32(wb + 4, true), dv.getInt32(nb, true)]).toEqual([0.25, -4, 5]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('names, integer ranges, headers alone, stale temporary files, atomic loadStateDict', () => {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('tensors named __proto__, constructor and prototype survive save → load as own entries', async () => {
    // Object.fromEntries defines its keys, so `__proto__` is an entry here, not the prototype
    const input = Object.fromEntries([['__proto__', k.tensor([1, 2])], ['constructor', k.tensor([3])], ['prototype', k.tensor(Int32Array.from([4]))], ['w', k.tensor([5])]]) as Record<string, k.Tensor>;
    const p = path.join(dir, 'proto.safetensors');
    await k.save(input, p);
    const { header } = parseSpec(new Uint8Array(fs.readFileSync(p)));
    expect(Object.keys(header).sort()).toEqual(['__proto__', 'constructor', 'prototype', 'w']);
    expect(Object.getOwnPropertyDescriptor(header, '__proto__')!.value).toEqual({ dtype: 'F32', shape: [2], data_offsets: [0, 8] });
    const back = await k.load(p);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back).sort()).toEqual(['__proto__', 'constructor', 'prototype', 'w']);
    expect(await arr(Object.getOwnPropertyDescriptor(back, '__proto__')!.value as k.Tensor)).toEqual([1, 2]);
    expect(await arr(back.constructor as unknown as k.Tensor)).toEqual([3]);
    expect(await arr(back.prototype!)).toEqual([4]);
    // written from the specification: a header key "__proto__" and a metadata key "__proto__"
    const hdr = '{"__metadata__":{"__proto__":"m"},"__proto__":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}';
    const r = k.deserialize(file(hdr, i32le([-7])));
    expect(Object.keys(r.tensors)).toEqual(['__proto__']);
    expect(await arr(Object.getOwnPropertyDescriptor(r.tensors, '__proto__')!.value as k.Tensor)).toEqual([-7]);
    expect(Object.getOwnPropertyDescriptor(r.metadata, '__proto__')!.value).toBe('m');
  });

  it('I64 and U64 values beyond i32 (and beyond 2^53) are errors naming the tensor, not wrapped values', async () => {
    const i64 = (vs: bigint[]) => vs.flatMap((v) => { const b = new DataView(new ArrayBuffer(8)); b.setBigInt64(0, v, true); return Array.from(new Uint8Array(b.buffer)); });
    const u64 = (vs: bigint[]) => vs.flatMap((v) => { const b = new DataView(new ArrayBuffer(8)); b.setBigUint64(0, v, true); return Array.from(new Uint8Array(b.buffer)); });
    const one = (dtype: string, bytes: number[], n: number) => file(JSON.stringify({ ok: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, ids: { dtype, shape: [n], data_offsets: [4, 4 + 8 * n] } }), [...F32_BYTES.one, ...bytes]);
    // the extremes of i32 load exactly
    const fine = await k.load(one('I64', i64([-(2n ** 31n), 2n ** 31n - 1n]), 2));
    expect(await arr(fine.ids!)).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    expect(await arr((await k.load(one('U64', u64([0n, 2n ** 31n - 1n]), 2))).ids!)).toEqual([0, 2 ** 31 - 1]);
    const before = k.memory().liveBuffers;
    // 2^40 + 7 used to load as 7
    expect(() => k.deserialize(one('I64', i64([1n, 2n ** 40n + 7n]), 2))).toThrow("load safetensors data: tensor 'ids' (I64) holds 1099511627783 at element 1, outside the range of i32 that kiln loads I64 into [-2147483648, 2147483647]");
    expect(() => k.deserialize(one('I64', i64([2n ** 31n]), 1))).toThrow(/tensor 'ids' \(I64\) holds 2147483648 at element 0, outside the range of i32/);
    expect(() => k.deserialize(one('I64', i64([-(2n ** 62n)]), 1))).toThrow(/holds -4611686018427387904 at element 0, .*\(beyond 2\^53, so not even exactly representable as a JS number\)/);
    expect(() => k.deserialize(one('U64', u64([2n ** 64n - 1n]), 1))).toThrow(/tensor 'ids' \(U64\) holds 18446744073709551615 at element 0, .*beyond 2\^53/);
    const p = writeTemp(one('I64', i64([2n ** 53n + 1n]), 1));
    await expect(k.load(p)).rejects.toThrow(new RegExp(`^load ${esc(p)}: tensor 'ids' \\(I64\\) holds 9007199254740993`));
    // the tensor decoded before the bad one ('ok') was freed
    await k.synchronize();
    expect(k.memory().liveBuffers).toBeLessThanOrEqual(before);
  });

  it('k.loadHeader reads names, dtypes, shapes and metadata without the data, and validates like k.load', async () => {
    const p = writeTemp(file(REF_HEADER, REF_DATA));
    const h = await k.loadHeader(p);
    expect(h.metadata).toEqual({ format: 'pt', note: 'héllo ✓' });
    expect(h.tensors.map((t) => t.name).sort()).toEqual(['a', 'c', 'h', 'mask', 's', 'u8']);
    expect(h.tensors.find((t) => t.name === 'h')).toEqual({ name: 'h', dtype: 'F16', shape: [2, 2] });
    // the same errors as a full load: a truncated file, a truncated header, a directory, a missing file
    const b = file(REF_HEADER, REF_DATA);
    for (const bad of [b.subarray(0, b.length - 2), b.subarray(0, 60), b.subarray(0, 5)]) {
      const q = writeTemp(bad);
      const full = await k.load(q).then(() => 'loaded', (e: Error) => e.message);
      await expect(k.loadHeader(q)).rejects.toThrow(full);
      expect(full).toMatch(new RegExp(`^load ${esc(q)}: (tensor 's' ends at byte 43|header length \\d+ runs past the end|file is too short)`));
    }
    await expect(k.loadHeader(dir)).rejects.toThrow(`load ${dir}: is a directory, not a safetensors file (EISDIR)`);
    await expect(k.load(dir)).rejects.toThrow(`load ${dir}: is a directory, not a safetensors file (EISDIR)`);
    const missing = path.join(dir, 'nope.safetensors');
    await expect(k.loadHeader(missing)).rejects.toThrow(`load ${missing}: no such file (ENOENT)`);
  });

  it('a save removes the temporary files that killed saves of the same file left, and keeps the rest', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'stale-'));
    const p = path.join(sub, 'ckpt.safetensors');
    // a process that has exited: its pid is free
    const { spawnSync } = await import('node:child_process');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const stale = [`ckpt.safetensors.tmp-${dead}-lq3x1`, `ckpt.safetensors.tmp-${process.pid}-abc`];
    // a save in progress in another live process, another file's temp, and a file that only looks alike
    const kept = [`ckpt.safetensors.tmp-${process.ppid}-zz9`, `other.safetensors.tmp-${dead}-a1`, 'ckpt.safetensors.tmp-notes.txt'];
    for (const f of [...stale, ...kept]) fs.writeFileSync(path.join(sub, f), 'partial');
    await k.save({ w: k.tensor([1]) }, p);
    expect(fs.readdirSync(sub).sort()).toEqual(['ckpt.safetensors', ...kept].sort());
  });

  it('loadStateDict checks every name, shape and dtype before assigning anything', async () => {
    class Counter extends k.nn.Module {
      w = new k.nn.Parameter(k.tensor([1, 2]));
      constructor() {
        super();
        this.registerBuffer('count', k.tensor(Int32Array.from([3])));
      }
    }
    const net = new k.nn.Sequential(new k.nn.Linear(2, 3), new k.nn.Linear(3, 1));
    const want = await Promise.all(net.parameters().map(arr));
    const good = { '0.weight': k.ones([3, 2]), '0.bias': k.ones([3]), '1.weight': k.ones([1, 3]), '1.bias': k.ones([1]) };
    // the first three are fine; the last has the wrong shape: nothing is assigned
    expect(() => net.loadStateDict({ ...good, '1.bias': k.ones([2]) })).toThrow("loadStateDict: '1.bias' has shape [2] in the state dict but [1] in the module (nothing was loaded)");
    expect(await Promise.all(net.parameters().map(arr))).toEqual(want);
    // every problem is listed
    expect(() => net.loadStateDict({ ...good, '0.weight': k.ones([2, 3]), '1.bias': k.ones([2]) })).toThrow(/'0\.weight' has shape \[2, 3\].*; '1\.bias' has shape \[2\]/);
    // a disposed tensor, and a float into an integer buffer (it would truncate)
    const gone = k.ones([1]);
    gone.dispose();
    expect(() => net.loadStateDict({ ...good, '1.bias': gone })).toThrow("loadStateDict: '1.bias' was disposed (nothing was loaded)");
    expect(await Promise.all(net.parameters().map(arr))).toEqual(want);
    const c = new Counter();
    expect(() => c.loadStateDict({ w: k.tensor([7, 8]), count: k.tensor([2.5]) })).toThrow("loadStateDict: 'count' is f32 in the state dict but i32 in the module (a f32 → i32 cast would lose values) (nothing was loaded)");
    expect(await arr(c.w)).toEqual([1, 2]);
    // integers into floats are cast
    c.loadStateDict({ w: k.tensor(Int32Array.from([7, 8])), count: k.tensor(Int32Array.from([4])) });
    expect([await arr(c.w), await arr((c as unknown as { count: k.Tensor }).count)]).toEqual([[7, 8], [4]]);
    // names are own keys: `constructor` is not "in" a state dict by inheritance
    expect(() => c.loadStateDict(Object.fromEntries([['w', k.tensor([1, 1])], ['count', k.tensor(Int32Array.from([1]))], ['constructor', k.tensor([0])]]))).toThrow('loadStateDict: keys do not match; unexpected: constructor');
    expect(() => c.loadStateDict({ w: k.tensor([1, 1]) } as Record<string, k.Tensor>)).toThrow('loadStateDict: keys do not match; missing: count');
    // the correct dict loads
    net.loadStateDict(good);
    expect(await arr((net.at(1) as k.nn.Linear).bias!)).toEqual([1]);
  });
});
