/**
 * Op conformance in the browser (Chromium, SwiftShader WebGPU): the same cases as the Node suite, compared
 * with the same float64 'cpu' reference on the same deterministic inputs, so passing both proves that the
 * browser and Node agree. Plus kiln's Philox stream checked bit for bit against `k.philox4x32`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.js';
import { PHILOX_KAT, cases, describeFailure, errorReport, randomMoments, runCase, type CaseResult } from '../shared/conformance.js';

beforeAll(async () => {
  await k.init();
});

for (const fusion of [true, false]) {
  describe(`conformance (browser, fusion ${fusion ? 'on' : 'off'})`, () => {
    const results: CaseResult[] = [];
    afterAll(() => {
      const pipelines = results.reduce((s, r) => s + r.pipelines, 0);
      console.log(`conformance (browser ${k.deviceInfo().driver}, fusion ${fusion ? 'on' : 'off'}): ${results.length} cases, ${pipelines} pipelines compiled\n${errorReport(results)}`);
    });
    for (const c of cases) {
      it(c.name, async () => {
        const r = await runCase(k, c, { fusion });
        results.push(r);
        expect(r.ok, describeFailure(r)).toBe(true);
      });
    }
  });
}

describe('random (browser)', () => {
  it('k.philox4x32 matches the Random123 known-answer vectors', () => {
    for (const v of PHILOX_KAT) expect(k.philox4x32(...v.ctr, ...v.key)).toEqual(v.out);
  });

  it('seeded rand / randint equal golden values derived from k.philox4x32, bit for bit', async () => {
    const seed = 2 ** 33 + 777; // exercises both key words
    const key = [seed % 2 ** 32 >>> 0, Math.floor(seed / 2 ** 32) >>> 0] as const;
    const n = 70;
    k.manualSeed(seed);
    const [u0, u1, ri] = await k.scope(() => Promise.all([k.rand([n]).data(), k.rand([n]).data(), k.randint(-3, 10, [n]).data()]));
    for (let i = 0; i < n; i++) {
      // element i of the c-th random call since manualSeed uses counter (i, c, 0, 0) under the seed's key
      const w0 = k.philox4x32(i, 0, 0, 0, key[0], key[1])[0];
      const w1 = k.philox4x32(i, 1, 0, 0, key[0], key[1])[0];
      const w2 = k.philox4x32(i, 2, 0, 0, key[0], key[1])[0];
      expect(u0[i], `rand call 0, element ${i}`).toBe((w0 >>> 8) * 2 ** -24);
      expect(u1[i], `rand call 1, element ${i}`).toBe((w1 >>> 8) * 2 ** -24);
      expect(ri[i], `randint call 2, element ${i}`).toBe((w2 % 13) - 3);
    }
  });

  it('randn / rand moments of 2^16 samples are within 4 standard errors of N(0,1) / U[0,1)', async () => {
    const m = await randomMoments(k, 2 ** 16);
    expect(Math.abs(m.normal.zMean), JSON.stringify(m.normal)).toBeLessThan(4);
    expect(Math.abs(m.normal.zStd), JSON.stringify(m.normal)).toBeLessThan(4);
    expect(Math.abs(m.uniform.zMean), JSON.stringify(m.uniform)).toBeLessThan(4);
    expect(Math.abs(m.uniform.zVar), JSON.stringify(m.uniform)).toBeLessThan(4);
  });
});
