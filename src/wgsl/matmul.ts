/**
 * The matmul kernel templates: register-blocked tiles (software drivers) or blocks staged in workgroup memory
 * (GPUs), split along k in two passes when there are few tiles.
 */
import { type IndexConstants, slotsWhereEveryLoad } from './ir.js';
import type { Atom, KernelConfig, MatmulKernel, MatmulOperand, Pass } from './kernels.js';
import { constantsOf, ENTRY, fnOf, grid, type HeaderOptions, prelude, readUniformsDirectly, storeText, WG } from './kernel-source.js';

/** WGSL for the batch offset of operand `op` from the batch index `b`. */
function operandIndex(op: MatmulOperand, batchShape: number[], C: IndexConstants, name: string): string {
  let off = C.u32(op.offset);
  let rem = 'b';
  for (let i = batchShape.length - 1; i >= 0; i--) {
    const d = batchShape[i]!;
    const st = op.batchStrides[i]!;
    // negative strides of flipped views wrap; the sums come out right mod 2³²
    if (st !== 0 && d > 1) off += ` + ${C.mod(`(${rem})`, d, `${name}b${i}`)} * ${C.u32(st)}`;
    rem = C.div(`(${rem})`, d, `${name}b${i}`);
  }
  return off;
}

/** WGSL for the buffer offset of coordinate `i` along an axis made of sub-dimensions. */
function axisOffset(i: string, atoms: Atom[], C: IndexConstants, name: string): string {
  if (!atoms.length) return '0u';
  const terms: string[] = [];
  let inner = 1;
  for (let a = atoms.length - 1; a >= 0; a--) {
    const [n, s] = atoms[a]!;
    let digit = inner === 1 ? i : C.div(i, inner, `${name}i${a}`);
    if (a > 0) digit = C.mod(digit, n, `${name}n${a}`);
    terms.push(`${digit} * ${C.u32(s, `${name}s${a}`)}`);
    inner *= n;
  }
  return terms.join(' + ');
}

/**
 * The k offset of an operand as a loop variable: set once from the loop's first k, then stepped. An axis
 * of several sub-dimensions keeps its digits and carries instead of dividing k at every step.
 */
function axisStepper(v: string, atoms: Atom[], C: IndexConstants, start: string): { init: string[]; step: string[] } {
  if (!atoms.length) return { init: [`  let ${v} = 0u;`], step: [] };
  const L = atoms.length - 1;
  const init = [`  var ${v} = ${axisOffset(start, atoms, C, v)};`];
  let inner = atoms[L]![0];
  for (let a = L - 1; a >= 1; a--) {
    init.push(`  var ${v}${a} = ${C.mod(C.div(start, inner, `${v}i${a}`), atoms[a]![0], `${v}n${a}`)};`);
    inner *= atoms[a]![0];
  }
  if (L >= 1) init.push(`  var ${v}${L} = ${C.mod(start, atoms[L]![0], `${v}n${L}`)};`);
  // step the innermost digit; a digit that reaches its size wraps to 0 and carries into the next one out
  let step = [`${v} += ${C.u32(atoms[L]![1], `${v}s${L}`)};`];
  if (L >= 1) {
    let carry: string[] = [];
    for (let a = 1; a <= L; a++) {
      const [n, s] = atoms[a]!;
      const delta = C.u32(atoms[a - 1]![1] - n * s);
      carry = [`${v}${a} += 1u;`, `if (${v}${a} == ${C.u32(n, `${v}n${a}`)}) {`, `  ${v}${a} = 0u;`, `  ${v} += ${delta};`, ...carry.map((l) => `  ${l}`), '}'];
    }
    step = [...step, ...carry];
  }
  return { init, step: step.map((l) => `    ${l}`) };
}

/**
 * Number of slices the k loop is split into when there are too few output tiles to keep the device busy
 * (e.g. weight gradients: a small output, a reduction over the whole batch); 1 when not worth it.
 */
export function matmulSplitK(tiles: number, K: number, cfg: KernelConfig): number {
  const want = Math.ceil(cfg.reducePartials / 2 / tiles);
  return Math.max(1, Math.min(want, Math.floor(K / 128)));
}

/** Pass 1 of a matmul as a template renders it: its main (entry point and epilogue), grid, slices and constants. */
interface FirstPass {
  main: string;
  wg: [number, number, number];
  /** Slices along k (2 passes when > 1). */
  S: number;
  C: IndexConstants;
  epi: string;
  outSize: number;
  header: HeaderOptions;
  /** The pass has workgroup barriers: it reads its uniforms directly (a private copy is not uniform). */
  barriers: boolean;
  /** The pass uses subgroup operations. */
  subgroups: boolean;
}

/**
 * Renders a (batched) matmul with its epilogue as one pass, or two when split along k: register tiles per
 * invocation (`matmulKernel: 'registers'`), or blocks staged in workgroup memory (`'shared'`, for GPUs).
 */
export function renderMatmul(k: MatmulKernel, cfg: KernelConfig): Pass[] {
  const first = cfg.matmulKernel === 'shared' ? sharedTiles(k, cfg) : registerTiles(k, cfg);
  const { main, wg, S, C, epi, outSize, header: opts } = first;
  // every invocation of a subgroup reaches each broadcast (see registerTiles), which the uniformity
  // analysis cannot see through the loop bounds read from the invocation's index
  const subgroups = first.subgroups ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' : '';
  const direct = (code: string) => subgroups + (first.barriers ? readUniformsDirectly(code) : code);
  if (S === 1) {
    const h1 = prelude(k, C, main, opts);
    return [{ code: direct(`${h1.text}\n${main}`), workgroups: wg, bindings: h1.bindings, params: C.words }];
  }
  // pass 2: sum the slices and apply the epilogue
  const g2 = grid(outSize, WG, cfg);
  const main2 = `${epi}
${ENTRY}
  let g = (wid.y * ${C.u32(g2.nx)} + wid.x) * ${WG}u + lid;
  let outSize = ${C.u32(outSize, 'outSize')};
  if (g >= outSize) { return; }
  var acc = 0.0;
  for (var s = 0u; s < ${C.u32(S)}; s++) { acc += S_in[s * outSize + g]; }
  OUT[g] = ${storeText(k.outDtype, 'epilogue(g, acc)')};
}`;
  const h1 = prelude(k, C, main, { scratchOut: true, scratchType: 'f32', ...opts });
  const h2 = prelude(k, C, main2, { scratchIn: true, scratchType: 'f32' });
  const scratchBytes = S * outSize * 4;
  return [
    { code: direct(`${h1.text}\n${main}`), workgroups: wg, bindings: h1.bindings, scratchBytes, params: C.words },
    { code: `${h2.text}\n${main2}`, workgroups: g2.wg, bindings: h2.bindings, scratchBytes, params: C.words },
  ];
}

/** Register tiles: each invocation computes TM × TN outputs from A and B read straight from their buffers (software drivers). */
function registerTiles(k: MatmulKernel, cfg: KernelConfig): FirstPass {
  const [TM, TN] = cfg.matmulTile;
  const tilesM = Math.ceil(k.M / TM);
  const tilesN = Math.ceil(k.N / TN);
  const batch = k.batchShape.reduce((a, b) => a * b, 1);
  const S = matmulSplitK(batch * tilesM * tilesN, k.K, cfg);
  const chunk = Math.ceil(k.K / S);
  const outSize = batch * k.M * k.N;
  // rows shared within subgroups of G invocations (0: not shared): the G invocations of a subgroup compute
  // tiles of the same rows, each loads ⌈TM / G⌉ of their values per k and takes the others by broadcast
  const G = cfg.matmulShareRows && cfg.subgroupSize > 0 && WG % cfg.subgroupSize === 0 ? cfg.subgroupSize : 0;
  // a workgroup computes a block of BM × BN tiles, so the rows of A and columns of B it reads stay in cache
  // (rows shared: BN a multiple of G, so a subgroup's consecutive invocations are in one row of tiles)
  const BM = 2 ** Math.floor(Math.log2(Math.min(tilesM, 16, G ? WG / G : WG))), BN = WG / BM;
  const blocksN = Math.ceil(tilesN / BN), blocksM = Math.ceil(tilesM / BM);
  const perSlice = batch * blocksM * blocksN * WG;
  const { wg, nx } = grid(perSlice * S, WG, cfg);
  const C = constantsOf(k, Math.max(perSlice * S, outSize * S, batch * k.M * k.K, batch * k.K * k.N));
  const epi = fnOf('epilogue', 'gid: u32, acc: f32', k.epilogue.t, k.epilogue, C);
  // row and column offsets are computed once per tile; only the k offsets change inside the loop
  const setup: string[] = [`  let lastM = ${C.u32(k.M - 1)};`, `  let lastN = ${C.u32(k.N - 1)};`];
  // rows shared: each invocation loads rows lane, lane + G, … of the tile (the last clamped into it)
  const shareLoads = G ? Math.ceil(TM / G) : 0;
  if (G) {
    for (let q = 0; q < shareLoads; q++) {
      const row = (q + 1) * G > TM ? `min(lane + ${q * G}u, ${TM - 1}u)` : `lane + ${q * G}u`;
      setup.push(`  let ms${q} = min(m0 + ${row}, lastM);`, `  let as${q} = aBase + ${axisOffset(`ms${q}`, k.a.rows, C, 'ar')};`);
    }
  } else for (let i = 0; i < TM; i++) setup.push(`  let mr${i} = min(m0 + ${i}u, lastM);`, `  let ar${i} = aBase + ${axisOffset(`mr${i}`, k.a.rows, C, 'ar')};`);
  // B read as vec4 (4 columns at a time; its k offsets are multiples of 4): the start of each group of 4
  // columns, the last group at the edge clamped to the last 4 columns (their extra values are not stored)
  const bVec4 = cfg.vectorWidth === 4 && vec4Columns(k, TN);
  if (bVec4) for (let j = 0; j < TN; j += 4) setup.push(`  let nq${j} = min(n0 + ${j}u, ${C.u32(k.N - 4)});`, `  let bq${j} = (bBase + ${axisOffset(`nq${j}`, k.b.cols, C, 'bc')}) >> 2u;`);
  else for (let j = 0; j < TN; j++) setup.push(`  let nc${j} = min(n0 + ${j}u, lastN);`, `  let bc${j} = bBase + ${axisOffset(`nc${j}`, k.b.cols, C, 'bc')};`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) setup.push(`  var c${i}_${j} = 0.0;`);
  // read as vec4, B's k offset counts vec4s (its row strides are multiples of 4): no shift in the loop
  const bRows = bVec4 ? k.b.rows.map(([n, s]): Atom => [n, s / 4]) : k.b.rows;
  const ak = axisStepper('ak', k.a.cols, C, 'kStart'), bk = axisStepper('bk', bRows, C, 'kStart');
  // the loads of one k (their names suffixed); stepK moves the k offsets to the next
  const loads = (u: string): string[] => {
    const out: string[] = [];
    if (G) {
      for (let q = 0; q < shareLoads; q++) out.push(`    let s${q}${u} = f32(B${k.a.slot}[as${q} + ak]);`);
      for (let i = 0; i < TM; i++) out.push(`    let a${i}${u} = subgroupBroadcast(s${Math.floor(i / G)}${u}, ${i % G}u);`);
    } else for (let i = 0; i < TM; i++) out.push(`    let a${i}${u} = f32(B${k.a.slot}[ar${i} + ak]);`);
    if (bVec4) for (let j = 0; j < TN; j += 4) out.push(`    let bv${j}${u} = B${k.b.slot}[bk + bq${j}];`, ...[0, 1, 2, 3].map((c) => `    let b${j + c}${u} = bv${j}${u}[${c}];`));
    else for (let j = 0; j < TN; j++) out.push(`    let b${j}${u} = f32(B${k.b.slot}[bk + bc${j}]);`);
    return out;
  };
  const stepK = [...ak.step, ...bk.step];
  // one step of k; with matmulUnrollK = KU > 1 the loop takes KU steps at a time (each accumulator takes
  // its KU products in order) and single steps finish a slice whose length is not a multiple of KU
  // (only when B is read as vec4: with scalar B loads, as in a convolution's implicit GEMM, SwiftShader ran
  // bench:conv 7–20 % slower with two steps)
  const KU = bVec4 ? cfg.matmulUnrollK : 1;
  const fmas = (u: (v: number) => string, n: number) => Array.from({ length: TM * TN }, (_, e) => {
    const [i, j] = [Math.floor(e / TN), e % TN];
    let acc = `c${i}_${j}`;
    for (let v = 0; v < n; v++) acc = `fma(a${i}${u(v)}, b${j}${u(v)}, ${acc})`;
    return `    c${i}_${j} = ${acc};`;
  });
  const one = [...loads(''), ...fmas(() => '', 1), ...stepK];
  const body = KU === 1 ? one : [...Array.from({ length: KU }, (_, v) => [...loads(`_${v}`), ...stepK]).flat(), ...fmas((v) => `_${v}`, KU)];
  // the tile is stored by a loop over an array, so the epilogue (often a long fused chain) is emitted once,
  // not once per element of the tile: a software driver compiles a much smaller pipeline
  const cs = Array.from({ length: TM * TN }, (_, e) => `c${Math.floor(e / TN)}_${e % TN}`);
  const store = S === 1 ? `OUT[g] = ${storeText(k.outDtype, 'epilogue(g, tile[i * ' + TN + 'u + j])')};` : `S_out[slice * outSize + g] = tile[i * ${TN}u + j];`;
  const stores: string[] = [
    `  let M = ${C.u32(k.M)};`,
    `  let N = ${C.u32(k.N)};`,
    `  var tile = array<f32, ${TM * TN}>(${cs.join(', ')});`,
    `  for (var i = 0u; i < ${TM}u; i++) {`,
    `    if (m0 + i >= M) { break; }`,
    `    for (var j = 0u; j < ${TN}u; j++) {`,
    `      if (n0 + j < N) { let g = (b * M + m0 + i) * N + n0 + j; ${store} }`,
    '    }',
    '  }',
  ];
  // BN is a power of two: the position inside a block is a shift and a mask
  const main = `${S === 1 ? epi : ''}
${ENTRY}
  let t0 = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (t0 >= ${C.u32(perSlice * S)}) { return; }
  ${S === 1 ? 'let slice = 0u;\n  let t = t0;' : `let slice = ${C.div('t0', perSlice, 'perSlice')};\n  let t = t0 - slice * ${C.u32(perSlice, 'perSlice')};\n  let outSize = ${C.u32(outSize)};`}
  let blk = t / ${WG}u;
  let within = t % ${WG}u;
  let blocksN = ${C.u32(blocksN, 'blocksN')};
  let bmn = ${C.div('blk', blocksN, 'blocksN')};
  let tn = (blk - bmn * blocksN) * ${C.u32(BN)} + (within & ${C.u32(BN - 1)});
  let b = ${C.div('bmn', blocksM, 'blocksM')};
  let tm = (bmn - b * ${C.u32(blocksM, 'blocksM')}) * ${C.u32(BM)} + (within >> ${C.u32(Math.log2(BN))});
${G ? `  // rows shared: a subgroup (G invocations, tiles tn − lane … tn − lane + G − 1 of one row of tiles) returns
  // as a whole; an invocation past the last column of tiles computes the last tile again (the others need
  // its loads) and stores nothing
  let lane = lid % ${G}u;
  if (tm >= ${C.u32(tilesM)} || tn - lane >= ${C.u32(tilesN)}) { return; }
  let live = tn < ${C.u32(tilesN)};
  let m0 = tm * ${TM}u;
  let n0 = min(tn, ${C.u32(tilesN - 1)}) * ${TN}u;` : `  if (tn >= ${C.u32(tilesN)} || tm >= ${C.u32(tilesM)}) { return; }
  let m0 = tm * ${TM}u;
  let n0 = tn * ${TN}u;`}
  let aBase = ${operandIndex(k.a, k.batchShape, C, 'a')};
  let bBase = ${operandIndex(k.b, k.batchShape, C, 'b')};
${setup.join('\n')}
  let chunk = ${C.u32(chunk)};
  let kStart = slice * chunk;
  let kEnd = min(kStart + chunk, ${C.u32(k.K)});
${[...ak.init, ...bk.init].join('\n')}
${KU === 1 ? `  for (var kk = kStart; kk < kEnd; kk++) {
${body.join('\n')}
  }` : `  var kk = kStart;
  for (; kk + ${KU - 1}u < kEnd; kk += ${KU}u) {
${body.join('\n')}
  }
  for (; kk < kEnd; kk++) {
${one.join('\n')}
  }`}
${G ? '  if (!live) { return; }\n' : ''}${stores.join('\n')}
}`;
  return { main, wg, S, C, epi, outSize, header: bVec4 ? { vec4Inputs: new Set([k.b.slot]) } : {}, barriers: false, subgroups: G > 0 };
}

/**
 * The thread grid TY × TX (powers of two, TY·TX = WG) of a workgroup-tiled matmul whose invocations compute
 * TM × TN outputs: the one whose blocks pad M and N least, the square one on ties (small-M matmuls, such as
 * convolutions of 16–64 channels, get wide blocks).
 */
export function sharedLayout(M: number, N: number, TM: number, TN: number): { TY: number; TX: number } {
  let best = { TY: 16, TX: WG / 16 }, least = Infinity;
  for (const TY of [16, 8, 32, 4, 64]) {
    const TX = WG / TY;
    const area = Math.ceil(M / (TY * TM)) * TY * TM * Math.ceil(N / (TX * TN)) * TX * TN;
    if (area < least) [best, least] = [{ TY, TX }, area];
  }
  return best;
}

/**
 * Workgroup tiles (GPUs): a workgroup computes a BM × BN block, TM × TN outputs per invocation strided by the
 * thread grid (so neighbouring invocations read neighbouring words of workgroup memory and store neighbouring
 * outputs), and stages A and B through workgroup memory BK values of k at a time, each loaded once by the
 * whole workgroup with neighbouring invocations reading neighbouring elements.
 */
function sharedTiles(k: MatmulKernel, cfg: KernelConfig): FirstPass {
  const [TM, TN] = cfg.matmulTile;
  const { TY, TX } = sharedLayout(k.M, k.N, TM, TN);
  const BM = TY * TM, BN = TX * TN;
  // both staging arrays within 16 KiB (the smallest maxComputeWorkgroupStorageSize WebGPU allows)
  const BK = Math.min(16, 2 ** Math.floor(Math.log2(4096 / (BM + BN))));
  const blocksM = Math.ceil(k.M / BM), blocksN = Math.ceil(k.N / BN);
  const batch = k.batchShape.reduce((a, b) => a * b, 1);
  const perSlice = batch * blocksM * blocksN;
  const S = matmulSplitK(perSlice * WG, k.K, cfg);
  const chunk = Math.ceil(k.K / S);
  const outSize = batch * k.M * k.N;
  const { wg, nx } = grid(perSlice * S * WG, WG, cfg);
  const C = constantsOf(k, Math.max(perSlice * S * WG, outSize * S, batch * k.M * k.K, batch * k.K * k.N));
  const epi = fnOf('epilogue', 'gid: u32, acc: f32', k.epilogue.t, k.epilogue, C);
  const lg = (n: number) => Math.log2(n);
  const setup: string[] = [];
  const loadA: string[] = [], loadB: string[] = [];
  for (let q = 0; q * WG < BM * BK; q++) {
    setup.push(`  let ea${q} = lid + ${q * WG}u;`, `  let am${q} = m0 + (ea${q} >> ${lg(BK)}u);`, `  let akl${q} = ea${q} & ${BK - 1}u;`,
      `  let ar${q} = aBase + ${axisOffset(`min(am${q}, lastM)`, k.a.rows, C, 'ar')};`);
    const load = [`    let ka${q} = k0 + akl${q};`, `    As[ea${q}] = select(0.0, f32(B${k.a.slot}[ar${q} + ${axisOffset(`min(ka${q}, lastK)`, k.a.cols, C, 'ak')}]), am${q} < M && ka${q} < kEnd);`];
    loadA.push(...((q + 1) * WG > BM * BK ? [`    if (ea${q} < ${BM * BK}u) {`, ...load.map((l) => `  ${l}`), '    }'] : load));
  }
  for (let q = 0; q * WG < BK * BN; q++) {
    setup.push(`  let eb${q} = lid + ${q * WG}u;`, `  let bkl${q} = eb${q} >> ${lg(BN)}u;`, `  let bn${q} = n0 + (eb${q} & ${BN - 1}u);`,
      `  let bc${q} = bBase + ${axisOffset(`min(bn${q}, lastN)`, k.b.cols, C, 'bc')};`);
    const load = [`    let kb${q} = k0 + bkl${q};`, `    Bs[eb${q}] = select(0.0, f32(B${k.b.slot}[${axisOffset(`min(kb${q}, lastK)`, k.b.rows, C, 'bk')} + bc${q}]), bn${q} < N && kb${q} < kEnd);`];
    loadB.push(...((q + 1) * WG > BK * BN ? [`    if (eb${q} < ${BK * BN}u) {`, ...load.map((l) => `  ${l}`), '    }'] : load));
  }
  const body: string[] = [];
  for (let i = 0; i < TM; i++) body.push(`      let a${i} = As[(ty + ${i * TY}u) * ${BK}u + kk];`);
  for (let j = 0; j < TN; j++) body.push(`      let b${j} = Bs[kk * ${BN}u + tx + ${j * TX}u];`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) body.push(`      c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  const cs = Array.from({ length: TM * TN }, (_, e) => `c${Math.floor(e / TN)}_${e % TN}`);
  const store = S === 1 ? `OUT[g] = ${storeText(k.outDtype, `epilogue(g, tile[i * ${TN}u + j])`)};` : `S_out[slice * outSize + g] = tile[i * ${TN}u + j];`;
  const main = `var<workgroup> As: array<f32, ${BM * BK}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;
${S === 1 ? epi : ''}
${ENTRY}
  let wgi = wid.y * ${C.u32(nx)} + wid.x;
  if (wgi >= ${C.u32(perSlice * S)}) { return; }
  ${S === 1 ? 'let slice = 0u;\n  let blk = wgi;' : `let slice = ${C.div('wgi', perSlice, 'perSlice')};\n  let blk = wgi - slice * ${C.u32(perSlice, 'perSlice')};\n  let outSize = ${C.u32(outSize)};`}
  let blocksN = ${C.u32(blocksN, 'blocksN')};
  let bmn = ${C.div('blk', blocksN, 'blocksN')};
  let b = ${C.div('bmn', blocksM, 'blocksM')};
  let m0 = (bmn - b * ${C.u32(blocksM, 'blocksM')}) * ${BM}u;
  let n0 = (blk - bmn * blocksN) * ${BN}u;
  let M = ${C.u32(k.M)};
  let N = ${C.u32(k.N)};
  let lastM = M - 1u;
  let lastN = N - 1u;
  let lastK = ${C.u32(k.K - 1)};
  let ty = lid >> ${lg(TX)}u;
  let tx = lid & ${TX - 1}u;
  let aBase = ${operandIndex(k.a, k.batchShape, C, 'a')};
  let bBase = ${operandIndex(k.b, k.batchShape, C, 'b')};
${setup.join('\n')}
${cs.map((c) => `  var ${c} = 0.0;`).join('\n')}
  let chunk = ${C.u32(chunk)};
  let kStart = slice * chunk;
  let kEnd = min(kStart + chunk, ${C.u32(k.K)});
  for (var k0 = kStart; k0 < kEnd; k0 += ${BK}u) {
${loadA.join('\n')}
${loadB.join('\n')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${body.join('\n')}
    }
    workgroupBarrier();
  }
  var tile = array<f32, ${TM * TN}>(${cs.join(', ')});
  for (var i = 0u; i < ${TM}u; i++) {
    let m = m0 + ty + i * ${TY}u;
    if (m >= M) { break; }
    for (var j = 0u; j < ${TN}u; j++) {
      let n = n0 + tx + j * ${TX}u;
      if (n < N) { let g = (b * M + m) * N + n; ${store} }
    }
  }
}`;
  return { main, wg, S, C, epi, outSize, header: {}, barriers: true, subgroups: false };
}

/**
 * Whether B can be read 4 columns at a time: f32, its columns contiguous in groups of 4 (innermost column
 * sub-dimension of stride 1 and a size that is a multiple of 4, every other stride and its offset multiples
 * of 4) and read by nothing else in the kernel. lavapipe loads lane by lane, and a vec4 costs about half of
 * its four scalars (matmuls of 8×8 tiles ran 10–30 % faster).
 */
function vec4Columns(k: MatmulKernel, TN: number): boolean {
  const b = k.b, cols = b.cols;
  const inner = cols[cols.length - 1];
  const by4 = (n: number) => n % 4 === 0;
  return TN % 4 === 0 && k.N % 4 === 0 && k.inputs[b.slot] === 'f32' && k.a.slot !== b.slot && !slotsWhereEveryLoad([k.epilogue], () => true).has(b.slot)
    && inner !== undefined && inner[1] === 1 && by4(inner[0]) && cols.slice(0, -1).every(([, st]) => by4(st))
    && b.rows.every(([, st]) => by4(st)) && by4(b.offset) && b.batchStrides.every(by4);
}
