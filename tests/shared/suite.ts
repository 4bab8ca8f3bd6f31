/**
 * Registers the conformance suite (every case with fusion on and off) and the random-stream checks for one
 * platform; the Node and browser test files call it, so both run exactly the same tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHILOX_KAT, cases, describeFailure, errorReport, philoxGolden, randomMoments, runCase, type CaseResult, type Kiln } from './conformance.js';

/**
 * Declares the suite under `platform` ('node' or 'browser'). With `tunings`, the fused pass runs again under
 * each named kernel tuning (e.g. 'hardware' on a software adapter: the GPU kernels must pass here too).
 */
export function conformanceSuite(k: Kiln, platform: string, tunings: string[] = []): void {
  beforeAll(async () => {
    await k.init();
  });

  const passes = [{ fusion: true }, { fusion: false }, ...tunings.map((tuning) => ({ fusion: true, tuning }))];
  for (const { fusion, tuning } of passes as { fusion: boolean; tuning?: string }[]) {
    describe(`conformance (${platform}, fusion ${fusion ? 'on' : 'off'}${tuning ? `, ${tuning} tuning` : ''})`, () => {
      const results: CaseResult[] = [];
      if (tuning) {
        beforeAll(async () => {
          const info = await k.init({ tuning });
          expect(info.tuning).toBe(tuning);
        });
      }
      afterAll(async () => {
        const pipelines = results.reduce((s, r) => s + r.pipelines, 0);
        console.log(`conformance (${platform} ${k.deviceInfo().driver}, ${k.deviceInfo().tuning} tuning, subgroups of ${k.deviceInfo().subgroupSize}, fusion ${fusion ? 'on' : 'off'}): ${results.length} cases, ${pipelines} pipelines compiled\n${errorReport(results)}`);
        if (tuning) await k.init({ tuning: 'auto' });
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

  describe(`subgroups (${platform})`, () => {
    it('the subgroup layout kernels rely on is measured at init; the CPU drivers have it wherever they have subgroups', () => {
      const { driver, features, subgroupSize } = k.deviceInfo();
      // 0, or subgroups of consecutive invocations that tile a 64-invocation workgroup
      expect(subgroupSize === 0 || (64 % subgroupSize === 0 && (subgroupSize & (subgroupSize - 1)) === 0), String(subgroupSize)).toBe(true);
      // lavapipe (8 per subgroup with 256-bit vectors) and SwiftShader (4): register-tile matmuls share their row loads
      if (driver === 'lavapipe' || driver === 'swiftshader') expect(subgroupSize > 0).toBe(features.includes('subgroups'));
    });
  });

  describe(`random (${platform})`, () => {
    it('k.philox4x32 matches the Random123 known-answer vectors', () => {
      for (const v of PHILOX_KAT) expect(k.philox4x32(...v.ctr, ...v.key)).toEqual(v.out);
    });

    it('seeded rand / randint equal golden values derived from k.philox4x32, bit for bit', async () => {
      const { got, want } = await philoxGolden(k);
      expect(got).toEqual(want);
    });

    it('randn / rand moments of 2^16 samples are within 4 standard errors of N(0,1) / U[0,1)', async () => {
      const m = await randomMoments(k, 2 ** 16);
      expect(Math.abs(m.normal.zMean), JSON.stringify(m.normal)).toBeLessThan(4);
      expect(Math.abs(m.normal.zStd), JSON.stringify(m.normal)).toBeLessThan(4);
      expect(Math.abs(m.uniform.zMean), JSON.stringify(m.uniform)).toBeLessThan(4);
      expect(Math.abs(m.uniform.zVar), JSON.stringify(m.uniform)).toBeLessThan(4);
    });
  });
}
