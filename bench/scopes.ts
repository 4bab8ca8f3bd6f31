/**
 * Host cost of memory scopes (no GPU work): every composite op opens a sync scope, so this is on the path
 * of every op. Prints the median µs per iteration of
 *   composite: k.scope(() => x.silu().rsqrt().add(1).std()), then dispose (five composites, ~20 nodes)
 *   bare:      k.scope(() => i)
 *   async:     await k.scope(async () => x.add(i)), then dispose
 *
 *   npx tsx bench/scopes.ts
 */
import * as k from '../src/index.js';

await k.init();
const x = k.tensor(new Float32Array(16));
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;

function composite(n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) k.scope(() => x.silu().rsqrt().add(1).std()).dispose();
  return ((performance.now() - t0) / n) * 1e3;
}
function bare(n: number): number {
  const t0 = performance.now();
  let s = 0;
  for (let i = 0; i < n; i++) s += k.scope(() => i);
  return ((performance.now() - t0) / n) * 1e3 + s * 0;
}
async function asyncScopes(n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) (await k.scope(async () => x.add(i))).dispose();
  return ((performance.now() - t0) / n) * 1e3;
}

composite(20_000);
bare(200_000);
await asyncScopes(20_000);
const c: number[] = [], b: number[] = [], a: number[] = [];
for (let r = 0; r < 7; r++) {
  c.push(composite(20_000));
  b.push(bare(500_000));
  a.push(await asyncScopes(20_000));
}
console.log(JSON.stringify({ compositeUs: +median(c).toFixed(3), bareScopeUs: +median(b).toFixed(3), asyncScopeUs: +median(a).toFixed(3) }));
k.destroy();
