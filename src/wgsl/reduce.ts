/** The reduction kernel template: a loop over the reduced elements, split in two passes when there are few outputs. */
import type { VT } from './ir.js';
import type { KernelConfig, Pass, ReduceKernel } from './kernels.js';
import { constantsOf, ENTRY, fnOf, grid, prelude, storeText, WG } from './kernel-source.js';

function identity(op: 'sum' | 'max', t: VT): string {
  if (op === 'sum') return t === 'f32' ? '0.0' : t === 'u32' ? '0u' : '0';
  return t === 'f32' ? '(-kiln_inf())' : t === 'u32' ? '0u' : 'i32(-2147483647 - 1)';
}

function combine(op: 'sum' | 'max', t: VT, acc: string, x: string): string {
  if (op === 'sum') return `${acc} = ${acc} + ${x};`;
  // max propagates NaN like PyTorch
  return t === 'f32' ? `${acc} = select(max(${acc}, ${x}), kiln_nan(), kiln_isnan(${x}) || kiln_isnan(${acc}));` : `${acc} = max(${acc}, ${x});`;
}

/** Chooses how many partial sums a reduction is split into (1 = a single pass). */
export function reduceSplit(outSize: number, redSize: number, cfg: KernelConfig): number {
  if (outSize >= cfg.reducePartials / 4 || redSize < 2 * cfg.reduceMinChunk) return 1;
  const want = Math.ceil(cfg.reducePartials / outSize);
  return Math.max(1, Math.min(want, Math.floor(redSize / cfg.reduceMinChunk)));
}

/** Renders a reduction as one pass, or two (partials, then their reduction and the epilogue). */
export function renderReduce(k: ReduceKernel, cfg: KernelConfig): Pass[] {
  const t = k.accType;
  const tt = t === 'vec4u' ? 'u32' : t;
  const S = reduceSplit(k.outSize, k.redSize, cfg);
  const C = constantsOf(k, k.outSize * k.redSize);
  const epi = fnOf('epilogue', `gid: u32, acc: ${tt}`, k.epilogue.t, k.epilogue, C);
  const body = fnOf('body', 'o: u32, r: u32', t, k.body, C);
  if (S === 1) {
    const { wg, nx } = grid(k.outSize, WG, cfg);
    const main = `${body}
${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  var acc: ${tt} = ${identity(k.op, t)};
  for (var r = 0u; r < ${C.u32(k.redSize)}; r++) {
    let x = body(gid, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
    const { text, bindings } = prelude(k, C, main);
    return [{ code: `${text}\n${main}`, workgroups: wg, bindings, params: C.words }];
  }
  // pass 1: S partials per output, each over a chunk of `chunk` elements
  const chunk = Math.ceil(k.redSize / S);
  const g1 = grid(k.outSize * S, WG, cfg);
  const rExpr = cfg.reduceMapping === 'chunk' ? `s * ${C.u32(chunk)} + j` : `j * ${C.u32(S, 'S')} + s`;
  const main1 = `${body}
${ENTRY}
  let t = (wid.y * ${C.u32(g1.nx)} + wid.x) * ${WG}u + lid;
  if (t >= ${C.u32(k.outSize * S)}) { return; }
  let o = ${C.div('t', S, 'S')};
  let s = t - o * ${C.u32(S, 'S')};
  let redSize = ${C.u32(k.redSize, 'R')};
  var acc: ${tt} = ${identity(k.op, t)};
  for (var j = 0u; j < ${C.u32(chunk)}; j++) {
    let r = ${rExpr};
    if (r >= redSize) { break; }
    let x = body(o, r);
    ${combine(k.op, t, 'acc', 'x')}
  }
  S_out[t] = acc;
}`;
  // pass 2: reduce the partials and apply the epilogue
  const g2 = grid(k.outSize, WG, cfg);
  const main2 = `${epi}
${ENTRY}
  let gid = (wid.y * ${C.u32(g2.nx)} + wid.x) * ${WG}u + lid;
  if (gid >= ${C.u32(k.outSize)}) { return; }
  let S = ${C.u32(S, 'S')};
  var acc: ${tt} = ${identity(k.op, t)};
  for (var s = 0u; s < S; s++) {
    let x = S_in[gid * S + s];
    ${combine(k.op, t, 'acc', 'x')}
  }
  OUT[gid] = ${storeText(k.outDtype, 'epilogue(gid, acc)')};
}`;
  const p1 = prelude(k, C, main1, { scratchOut: true, scratchType: tt });
  const p2 = prelude(k, C, main2, { scratchIn: true, scratchType: tt });
  const scratchBytes = k.outSize * S * 4;
  return [
    { code: `${p1.text}\n${main1}`, workgroups: g1.wg, bindings: p1.bindings, scratchBytes, params: C.words },
    { code: `${p2.text}\n${main2}`, workgroups: g2.wg, bindings: p2.bindings, scratchBytes, params: C.words },
  ];
}
