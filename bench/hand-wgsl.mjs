/**
 * Hand-written WGSL kernels for the engine benchmark's figures, timed on their own WebGPU device (the same
 * adapter kiln picks) so that `npm run bench` compares kiln with them in the same run:
 *   chain  relu(x·a+b)·σ(x) over 4M f32: one vec4 per invocation
 *   sum    16M f32: invocations sum contiguous vec4 chunks, a second pass sums the partials
 *   matmul 1024³ f32: 8×8 register tiles, B read as vec4
 * Each kernel is checked against float64 on the host. Prints one JSON line:
 *   { chain_gbps, sum16M_gbps, matmul1024_gflops, errors: {…} }
 *
 *   node bench/hand-wgsl.mjs [--quick]
 */
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const QUICK = process.argv.includes('--quick');
// Dawn for Node needs the event loop alive while it waits
const keepAlive = setInterval(() => {}, 1000);

const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error('hand-wgsl: no WebGPU adapter');
const device = await adapter.requestDevice();
const U = globals.GPUBufferUsage;

function storage(data) {
  const b = device.createBuffer({ size: data.byteLength, usage: U.STORAGE | U.COPY_DST | U.COPY_SRC });
  device.queue.writeBuffer(b, 0, data);
  return b;
}
function empty(bytes) {
  return device.createBuffer({ size: bytes, usage: U.STORAGE | U.COPY_SRC });
}
async function read(buffer, bytes) {
  const rb = device.createBuffer({ size: bytes, usage: U.MAP_READ | U.COPY_DST });
  const e = device.createCommandEncoder();
  e.copyBufferToBuffer(buffer, 0, rb, 0, bytes);
  device.queue.submit([e.finish()]);
  await rb.mapAsync(globals.GPUMapMode.READ);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  rb.destroy();
  return out;
}
async function pipeline(code) {
  return device.createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
}
function bind(pipe, buffers) {
  return device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
}
/** Dispatch list [[pipeline, bindGroup, [x, y]] …] run `n` times in one submit; resolves when done. */
async function run(passes, n) {
  const e = device.createCommandEncoder();
  for (let i = 0; i < n; i++) {
    for (const [pipe, group, wg] of passes) {
      const p = e.beginComputePass();
      p.setPipeline(pipe);
      p.setBindGroup(0, group);
      p.dispatchWorkgroups(...wg);
      p.end();
    }
  }
  device.queue.submit([e.finish()]);
  await device.queue.onSubmittedWorkDone();
}
/** Median ms of one evaluation over runs of ~150 ms (50 with --quick) after a warm-up. */
async function time(passes) {
  await run(passes, 1);
  let t = performance.now();
  await run(passes, 1);
  const once = Math.max(0.05, performance.now() - t);
  const n = Math.max(1, Math.round((QUICK ? 150 : 500) / once));
  const runs = [];
  for (let r = 0; r < (QUICK ? 3 : 7); r++) {
    t = performance.now();
    await run(passes, n);
    runs.push((performance.now() - t) / n);
  }
  runs.sort((a, b) => a - b);
  return runs[runs.length >> 1];
}
function random(n, seed) {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}
/** Largest |got − want| over `count` spread-out samples, want from `ref(i)` in float64. */
function worst(got, ref, count = 64) {
  let e = 0;
  for (let t = 0; t < count; t++) {
    const i = Math.floor(((t + 0.5) / count) * got.length);
    e = Math.max(e, Math.abs(got[i] - ref(i)));
  }
  return e;
}

async function chain() {
  const N = 4 * 1024 * 1024;
  const [x, a, b] = [random(N, 1), random(N, 2), random(N, 3)];
  const buffers = [storage(x), storage(a), storage(b), empty(4 * N)];
  const pipe = await pipeline(`
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> O: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let i = (w.y * 64u + w.x) * 256u + l.x;
  if (i >= ${N / 4}u) { return; }
  let v = X[i];
  O[i] = max(v * A[i] + B[i], vec4(0.0)) / (1.0 + exp(-v));
}`);
  const passes = [[pipe, bind(pipe, buffers), [64, N / 4 / 256 / 64]]];
  const ms = await time(passes);
  const out = await read(buffers[3], 4 * N);
  const err = worst(out, (i) => Math.max(x[i] * a[i] + b[i], 0) / (1 + Math.exp(-x[i])));
  buffers.forEach((b) => b.destroy());
  return { gbps: (16 * N) / ms / 1e6, err };
}

async function sum() {
  const N = 16 * 1024 * 1024, PARTS = 4096, CHUNK = N / 4 / PARTS; // vec4s per invocation
  const x = random(N, 4);
  const buffers = [storage(x), empty(4 * PARTS), empty(16)];
  const p1 = await pipeline(`
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let t = w.x * 256u + l.x;
  var acc = vec4(0.0);
  for (var j = 0u; j < ${CHUNK}u; j++) { acc += X[t * ${CHUNK}u + j]; }
  P[t] = acc.x + acc.y + acc.z + acc.w;
}`);
  const p2 = await pipeline(`
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@compute @workgroup_size(1)
fn main() {
  var acc = 0.0;
  for (var i = 0u; i < ${PARTS}u; i++) { acc += P[i]; }
  S[0] = acc;
}`);
  const passes = [[p1, bind(p1, [buffers[0], buffers[1]]), [PARTS / 256, 1]], [p2, bind(p2, [buffers[1], buffers[2]]), [1, 1]]];
  const ms = await time(passes);
  const got = (await read(buffers[2], 16))[0];
  let want = 0;
  for (let i = 0; i < N; i++) want += x[i];
  buffers.forEach((b) => b.destroy());
  return { gbps: (4 * N) / ms / 1e6, err: Math.abs(got - want) / Math.max(1, Math.abs(want)) };
}

async function matmul() {
  const n = 1024, T = 8;
  const [a, b] = [random(n * n, 5), random(n * n, 6)];
  const buffers = [storage(a), storage(b), empty(4 * n * n)];
  const lines = [];
  for (let i = 0; i < T; i++) for (let j = 0; j < T / 4; j++) lines.push(`  var c${i}_${j} = vec4(0.0);`);
  const body = [];
  for (let i = 0; i < T; i++) body.push(`    let a${i} = A[(m0 + ${i}u) * ${n}u + k];`);
  for (let j = 0; j < T / 4; j++) body.push(`    let b${j} = B[(k * ${n}u + n0) / 4u + ${j}u];`);
  for (let i = 0; i < T; i++) for (let j = 0; j < T / 4; j++) body.push(`    c${i}_${j} = fma(vec4(a${i}), b${j}, c${i}_${j});`);
  const store = [];
  for (let i = 0; i < T; i++) for (let j = 0; j < T / 4; j++) store.push(`  C[((m0 + ${i}u) * ${n}u + n0) / 4u + ${j}u] = c${i}_${j};`);
  const pipe = await pipeline(`
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let n0 = g.x * ${T}u;
  let m0 = g.y * ${T}u;
${lines.join('\n')}
  for (var k = 0u; k < ${n}u; k++) {
${body.join('\n')}
  }
${store.join('\n')}
}`);
  const passes = [[pipe, bind(pipe, buffers), [n / T / 16, n / T / 16]]];
  const ms = await time(passes);
  const out = await read(buffers[2], 4 * n * n);
  const err = worst(out, (idx) => {
    const i = Math.floor(idx / n), j = idx % n;
    let s = 0;
    for (let k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
    return s;
  });
  buffers.forEach((b) => b.destroy());
  return { gflops: (2 * n ** 3) / ms / 1e6, err };
}

const c = await chain();
const s = await sum();
const m = await matmul();
process.stdout.write(`${JSON.stringify({ adapter: adapter.info.description, chain_gbps: c.gbps, sum16M_gbps: s.gbps, matmul1024_gflops: m.gflops, errors: { chain_max_abs: c.err, sum_rel: s.err, matmul_max_abs: m.err } })}\n`);
clearInterval(keepAlive);
device.destroy();
process.exit(0);
