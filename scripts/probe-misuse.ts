/**
 * Probes the API with hostile but fair input and prints how each case ends:
 *
 *   clear error          an error at the call site whose message starts with the op's name
 *   clear at readback    a device-side check reported by the next readback, naming the op
 *   accepted             legitimately accepted (the result is checked against the right value)
 *   silently wrong       accepted with a wrong result, or accepted where it must be rejected
 *   unclear error        an error that does not name the op (or a crash inside the engine)
 *   breaks device        later, unrelated work fails (the device is re-created to go on)
 *
 *   npm run probe:misuse [-- --only <substring>]
 *
 * A probe for people reading the engine's behaviour, not a test: tests/node/misuse.test.ts asserts the
 * messages.
 */
import * as k from '../src/index.js';

type Outcome = 'clear error' | 'clear at readback' | 'accepted' | 'silently wrong' | 'unclear error' | 'breaks device';

interface Case {
  name: string;
  /** The op a clear message starts with (`<op>: …`); absent for cases that must be accepted. */
  op?: string;
  run: () => unknown;
  /** For accepted cases: true when the (read) result is right. */
  ok?: (values: number[] | number | undefined) => boolean;
}

const i32 = (xs: number[], shape?: number[]) => k.tensor(Int32Array.from(xs), shape ? { shape } : {});
const onDevice = (xs: number[]) => k.tensor(xs).int();
const disposed = (t: k.Tensor = k.tensor([[1, 2], [3, 4]])) => {
  t.dispose();
  return t;
};
const p = () => [k.zeros([2], { requiresGrad: true })];
const same = (want: number[]) => (v: number[] | number | undefined) => Array.isArray(v) && v.length === want.length && v.every((x, i) => Object.is(x, want[i]) || Math.abs(x - want[i]!) < 1e-5);

const cases: Case[] = [
  // ---- indices (issue: silently wrong) ----
  { name: 'Embedding(10) id 12', op: 'Embedding', run: () => new k.nn.Embedding(10, 2).forward(i32([12])) },
  { name: 'Embedding(10) id -1', op: 'Embedding', run: () => new k.nn.Embedding(10, 2).forward(i32([-1])) },
  { name: 'Embedding(10) id 12 computed on the device', op: 'Embedding', run: () => new k.nn.Embedding(10, 2).forward(onDevice([12])) },
  { name: 'gather index 7 into length 3', op: 'gather', run: () => k.tensor([1, 2, 3]).gather(0, i32([7])) },
  { name: 'gather index -4 into length 3', op: 'gather', run: () => k.tensor([1, 2, 3]).gather(0, i32([-4])) },
  { name: 'gather u32 index 2^32-1', op: 'gather', run: () => k.tensor([1, 2, 3]).gather(0, k.tensor(Uint32Array.from([4294967295]))) },
  { name: 'gather index 7 computed on the device', op: 'gather', run: () => k.tensor([1, 2, 3]).gather(0, onDevice([7])) },
  { name: 'gather index -1 (counts from the end)', run: () => k.tensor([1, 2, 3]).gather(0, i32([-1])), ok: same([3]) },
  { name: 'indexSelect index 5 of 5', op: 'indexSelect', run: () => k.zeros([5, 2]).indexSelect(0, i32([5])) },
  { name: 'indexSelect computed on the device', op: 'indexSelect', run: () => k.zeros([5, 2]).indexSelect(0, onDevice([9])) },
  { name: 'scatterAdd index 3 of 3', op: 'scatterAdd', run: () => k.zeros([3]).scatterAdd(0, i32([3]), k.ones([1])) },
  { name: 'scatterAdd computed on the device', op: 'scatterAdd', run: () => k.zeros([3]).scatterAdd(0, onDevice([-4]), k.ones([1])) },
  { name: 'oneHot(5, 3)', op: 'oneHot', run: () => i32([5]).oneHot(3) },
  { name: 'oneHot(-1, 3)', op: 'oneHot', run: () => i32([-1]).oneHot(3) },
  { name: 'oneHot computed on the device', op: 'oneHot', run: () => onDevice([3]).oneHot(3) },
  { name: 'crossEntropy target 5 of 3', op: 'crossEntropy', run: () => k.F.crossEntropy(k.zeros([1, 3]), i32([5])) },
  { name: 'crossEntropy target -3 of 3', op: 'crossEntropy', run: () => k.F.crossEntropy(k.zeros([1, 3]), i32([-3])) },
  { name: 'crossEntropy target 4 with labelSmoothing', op: 'crossEntropy', run: () => k.F.crossEntropy(k.zeros([1, 3]), i32([4]), { labelSmoothing: 0.1 }) },
  { name: 'crossEntropy target computed on the device', op: 'crossEntropy', run: () => k.F.crossEntropy(k.zeros([1, 3]), onDevice([3])) },
  { name: 'crossEntropy ignoreIndex -100 target', run: () => k.F.crossEntropy(k.zeros([2, 3]), i32([0, -100]), { ignoreIndex: -100 }), ok: same([Math.log(3)]) },
  { name: 'crossEntropy -1 with ignoreIndex -100', op: 'crossEntropy', run: () => k.F.crossEntropy(k.zeros([2, 3]), i32([0, -1]), { ignoreIndex: -100 }) },
  { name: 'nllLoss target 3 of 3', op: 'nllLoss', run: () => k.F.nllLoss(k.zeros([1, 3]), i32([3])) },
  // ---- other silent acceptances ----
  { name: 'conv2d padding -1', op: 'conv2d', run: () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { padding: -1 }) },
  { name: 'conv2d padding 1.5', op: 'conv2d', run: () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { padding: 1.5 }) },
  { name: 'convTranspose2d padding -1', op: 'convTranspose2d', run: () => k.nn.convTranspose2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { padding: -1 }) },
  { name: 'convTranspose2d outputPadding -1', op: 'convTranspose2d', run: () => k.nn.convTranspose2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { stride: 2, outputPadding: -1 }) },
  { name: 'maxPool2d padding 2 with kernel 2', op: 'maxPool2d', run: () => k.nn.maxPool2d(k.zeros([1, 1, 4, 4]), 2, { padding: 2 }) },
  { name: 'tensor 3e9 as i32', op: 'tensor', run: () => k.tensor([3e9], { dtype: 'i32' }) },
  { name: 'tensor -1 as u32', op: 'tensor', run: () => k.tensor([-1], { dtype: 'u32' }) },
  { name: 'tensor NaN as i32', op: 'tensor', run: () => k.tensor([NaN], { dtype: 'i32' }) },
  { name: 'full 2^31 as i32', op: 'full', run: () => k.full([1], 2 ** 31, { dtype: 'i32' }) },
  { name: 'tensor 2.7 as i32 (truncates, as PyTorch)', run: () => k.tensor([2.7], { dtype: 'i32' }), ok: same([2]) },
  { name: 'zeros([0]).mean() is NaN', run: () => k.zeros([0]).mean(), ok: same([NaN]) },
  { name: 'zeros([0]).sum() is 0', run: () => k.zeros([0]).sum(), ok: same([0]) },
  { name: 'tensor([1]).var() is NaN (one element, correction 1)', run: () => k.tensor([1]).var(), ok: same([NaN]) },
  { name: 'SGD momentum -1', op: 'SGD', run: () => new k.optim.SGD(p(), { momentum: -1 }) },
  { name: 'SGD lr -1', op: 'SGD', run: () => new k.optim.SGD(p(), { lr: -1 }) },
  { name: 'SGD weightDecay -1', op: 'SGD', run: () => new k.optim.SGD(p(), { weightDecay: -1 }) },
  { name: 'Adam betas [1, 0.999]', op: 'Adam', run: () => new k.optim.Adam(p(), { betas: [1, 0.999] }) },
  { name: 'Adam eps -1', op: 'Adam', run: () => new k.optim.Adam(p(), { eps: -1 }) },
  { name: 'AdamW lr NaN', op: 'AdamW', run: () => new k.optim.AdamW(p(), { lr: NaN }) },
  { name: 'AdamW([])', op: 'AdamW', run: () => new k.optim.AdamW([]) },
  { name: 'optimizer.lr = -1', op: 'SGD', run: () => { new k.optim.SGD(p()).lr = -1; } },
  { name: 'SGD lr 0 (PyTorch accepts)', run: () => new k.optim.SGD(p(), { lr: 0 }) },
  { name: 'clipGradNorm maxNorm -1', op: 'clipGradNorm', run: () => k.optim.clipGradNorm(p(), -1) },
  // ---- unclear errors ----
  { name: 'add(disposed)', op: 'add', run: () => k.tensor([1, 2]).add(disposed(k.tensor([1, 2]))) },
  { name: 'disposed.add(1)', op: 'add', run: () => disposed().add(1) },
  { name: 'matmul(disposed)', op: 'matmul', run: () => k.eye(2).matmul(disposed()) },
  { name: 'disposed.sum()', op: 'sum', run: () => disposed().sum() },
  { name: 'disposed.data()', op: 'data', run: () => disposed().data() },
  { name: 'cat([x, disposed])', op: 'cat', run: () => k.cat([k.eye(2), disposed()]) },
  { name: 'where(c, disposed, 0)', op: 'where', run: () => k.where(k.eye(2).gt(0), disposed(), 0) },
  { name: 'conv2d(disposed)', op: 'conv2d', run: () => k.nn.conv2d(disposed(k.zeros([1, 1, 2, 2])), k.zeros([1, 1, 1, 1])) },
  { name: 'crossEntropy(disposed)', op: 'crossEntropy', run: () => k.F.crossEntropy(disposed(), i32([0, 1])) },
  { name: 'conv2d stride 0', op: 'conv2d', run: () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { stride: 0 }) },
  { name: 'conv2d dilation 0', op: 'conv2d', run: () => k.nn.conv2d(k.zeros([1, 1, 4, 4]), k.zeros([1, 1, 3, 3]), null, { dilation: 0 }) },
  { name: 'conv1d stride 0', op: 'conv1d', run: () => k.nn.conv1d(k.zeros([1, 1, 4]), k.zeros([1, 1, 3]), null, { stride: 0 }) },
  { name: 'maxPool2d stride 0', op: 'maxPool2d', run: () => k.nn.maxPool2d(k.zeros([1, 1, 4, 4]), 2, { stride: 0 }) },
  { name: 'avgPool2d kernel 0', op: 'avgPool2d', run: () => k.nn.avgPool2d(k.zeros([1, 1, 4, 4]), 0) },
  { name: 'eye(-2)', op: 'eye', run: () => k.eye(-2) },
  { name: 'chunk(0)', op: 'chunk', run: () => k.zeros([4]).chunk(0) },
  { name: 'split(0)', op: 'split', run: () => k.zeros([4]).split(0) },
  { name: 'split([2, -1, 3])', op: 'split', run: () => k.zeros([4]).split([2, -1, 3]) },
  { name: 'pixelShuffle(x, 0)', op: 'pixelShuffle', run: () => k.nn.pixelShuffle(k.zeros([1, 4, 2, 2]), 0) },
  { name: 'interpolate mode "cubic"', op: 'interpolate', run: () => k.nn.interpolate(k.zeros([1, 1, 2, 2]), { size: [4, 4], mode: 'cubic' as 'bilinear' }) },
  { name: 'Embedding(0, 4)', op: 'Embedding', run: () => new k.nn.Embedding(0, 4) },
  // ---- what already held (shape, axis, size errors) ----
  { name: 'add [2,3] + [4]', op: 'add', run: () => k.zeros([2, 3]).add(k.zeros([4])) },
  { name: 'matmul [2,3]·[4,5]', op: 'matmul', run: () => k.zeros([2, 3]).matmul(k.zeros([4, 5])) },
  { name: 'reshape [2,3] → [4,2]', op: 'reshape', run: () => k.zeros([2, 3]).reshape([4, 2]) },
  { name: 'sum axis 2 of rank 2', op: 'sum', run: () => k.zeros([2, 3]).sum(2) },
  { name: 'permute [0, 0]', op: 'permute', run: () => k.zeros([2, 3]).permute([0, 0]) },
  { name: 'expand [2,3] → [4,3]', op: 'expand', run: () => k.zeros([2, 3]).expand([4, 3]) },
  { name: 'cat mismatched', op: 'cat', run: () => k.cat([k.zeros([2, 3]), k.zeros([2, 4])]) },
  { name: 'gather float index', op: 'gather', run: () => k.zeros([2, 3]).gather(0, k.zeros([2, 3])) },
  { name: 'squeeze non-1 axis', op: 'squeeze', run: () => k.zeros([2, 3]).squeeze(0) },
  { name: 'item of 6 elements', op: 'item', run: () => k.zeros([2, 3]).item() },
  { name: 'tensor ragged', op: 'tensor', run: () => k.tensor([[1, 2], [3]]) },
  { name: 'cast to f64', op: 'cast', run: () => k.zeros([2]).cast('f64' as k.DType) },
  { name: 'unfold step 0', op: 'unfold', run: () => k.zeros([2, 3]).unfold(0, 1, 0) },
  { name: 'add an array', op: 'add', run: () => k.zeros([2]).add([1, 2] as unknown as number) },
  { name: 'zeros([-1])', op: 'zeros', run: () => k.zeros([-1]) },
  { name: 'arange step 0', op: 'arange', run: () => k.arange(0, 3, 0) },
  { name: 'linspace steps -1', op: 'linspace', run: () => k.linspace(0, 1, -1) },
  { name: 'softmax axis 3 of rank 2', op: 'softmax', run: () => k.zeros([2, 3]).softmax(3) },
  { name: 'narrow beyond the axis', op: 'narrow', run: () => k.zeros([4]).narrow(0, 2, 5) },
  { name: 'slice step 0', op: 'slice', run: () => k.zeros([4]).slice(0, 0, 4, 0) },
  { name: 'Linear(0, 3)', op: 'Linear', run: () => new k.nn.Linear(0, 3) },
  { name: 'Linear(3, 2) on 4 features', op: 'Linear', run: () => new k.nn.Linear(3, 2).forward(k.zeros([1, 4])) },
  { name: 'Dropout(2)', op: 'Dropout', run: () => new k.nn.Dropout(2) },
  { name: 'maxPool2d kernel larger than input', op: 'maxPool2d', run: () => k.nn.maxPool2d(k.zeros([1, 1, 2, 2]), 3) },
  { name: 'mseLoss shape mismatch', op: 'mseLoss', run: () => k.F.mseLoss(k.zeros([2]), k.zeros([3])) },
  // ---- kernels the device cannot run ----
  { name: 'zeros([1e6, 1e4]).sum()', op: 'zeros', run: () => k.zeros([1e6, 1e4]).sum() },
];

/** Reads a case's result (a tensor, an array of tensors or a promise of one). */
async function read(v: unknown): Promise<number[] | number | undefined> {
  const r = await v;
  if (r instanceof k.Tensor) return Array.from(await r.data());
  if (Array.isArray(r) && r.every((x) => x instanceof k.Tensor)) {
    for (const t of r) await t.data();
    return undefined;
  }
  return typeof r === 'number' ? r : undefined;
}

/** True when unrelated work still runs correctly. */
async function healthy(): Promise<boolean> {
  try {
    const v = await k.tensor([1, 2]).add(1).data();
    return v[0] === 2 && v[1] === 3;
  } catch {
    return false;
  }
}

function looksClear(msg: string, op: string): boolean {
  return msg.startsWith(`${op}: `) && !/undefined|null \(reading|is not a function|internal error|no overload/.test(msg);
}

async function probe(c: Case): Promise<{ outcome: Outcome; detail: string }> {
  let outcome: Outcome;
  let detail = '';
  let stage: 'call' | 'readback' = 'call';
  try {
    let result = k.scope(() => c.run());
    if (result instanceof Promise) result = await result; // async ops (data, item) reject at the call
    stage = 'readback';
    const values = await read(result);
    if (c.op) {
      outcome = 'silently wrong';
      detail = `accepted; expected an error from ${c.op}${values === undefined ? '' : `: got ${JSON.stringify(values).slice(0, 40)}`}`;
    } else if (c.ok && !c.ok(values)) {
      outcome = 'silently wrong';
      detail = `got ${JSON.stringify(values, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)).slice(0, 60)}`;
    } else {
      outcome = 'accepted';
      detail = values === undefined ? '' : JSON.stringify(values, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)).slice(0, 60);
    }
  } catch (e) {
    const msg = e instanceof Error ? `${e.constructor.name === 'Error' ? '' : `${e.constructor.name}: `}${e.message}` : String(e);
    detail = msg.replace(/\s+/g, ' ').slice(0, 150);
    const plain = e instanceof Error ? e.message : String(e);
    if (!c.op) outcome = 'unclear error';
    else if (!looksClear(plain, c.op)) outcome = 'unclear error';
    else outcome = stage === 'call' ? 'clear error' : 'clear at readback';
  }
  if (!(await healthy())) {
    outcome = 'breaks device';
    detail = `later work fails; ${detail}`;
    k.destroy();
    await k.init();
  }
  return { outcome, detail };
}

async function main(): Promise<void> {
  const only = process.argv.indexOf('--only') >= 0 ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const info = await k.init();
  console.log(`kiln misuse probe — ${info.driver}: ${info.description || info.device}\n`);
  const rows: [string, Outcome, string][] = [];
  for (const c of cases) {
    if (only && !c.name.includes(only)) continue;
    const { outcome, detail } = await probe(c);
    rows.push([c.name, outcome, detail]);
  }
  const w0 = Math.max(...rows.map((r) => r[0].length), 4), w1 = 17;
  console.log(`${'case'.padEnd(w0)}  ${'outcome'.padEnd(w1)}  message / value`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ${'-'.repeat(40)}`);
  for (const [name, outcome, detail] of rows) console.log(`${name.padEnd(w0)}  ${outcome.padEnd(w1)}  ${detail}`);
  const order: Outcome[] = ['clear error', 'clear at readback', 'accepted', 'silently wrong', 'unclear error', 'breaks device'];
  console.log(`\n${rows.length} cases:`);
  for (const o of order) console.log(`  ${o.padEnd(w1)} ${rows.filter((r) => r[1] === o).length}`);
  const good = rows.filter((r) => r[1] === 'clear error' || r[1] === 'clear at readback' || r[1] === 'accepted').length;
  console.log(`  clear or legitimately accepted: ${good} of ${rows.length}`);
  k.destroy();
}

await main();
