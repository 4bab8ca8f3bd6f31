/**
 * The order test files start in. Two files run at once (vitest.config.ts), so the suite ends soonest when
 * the longest files start first and the short ones fill in at the end. Vitest orders by the durations it
 * cached from an earlier run, else by file size; a fresh clone has no such cache, and by size the slowest
 * files started late and the suite took 625 s instead of 511. So the files known to be slow go first, by
 * their seconds from an empty shader cache (one file at a time, 2 cores, 2026-12-01); the rest keep
 * Vitest's order. A new slow file belongs in this table.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const SECONDS: Readonly<Record<string, number>> = {
  'tests/node/web.test.ts': 112,
  'tests/node/diffusion.test.ts': 99,
  'tests/node/vae-gan.test.ts': 91,
  'tests/node/diffusion-mnist.test.ts': 86,
  'tests/node/mixed-precision.test.ts': 54,
  'tests/node/stylegan.test.ts': 39,
  'tests/node/distill.test.ts': 38,
  'tests/node/pixelcnn-cli.test.ts': 36,
  'tests/node/compile.test.ts': 34,
  'tests/node/conformance.test.ts': 30,
  'tests/node/captions-cli.test.ts': 28,
  'tests/node/readme.test.ts': 28,
  'tests/node/distill-cli.test.ts': 24,
  'tests/node/torch-golden.test.ts': 23,
  'tests/node/likelihood-cli.test.ts': 21,
  'tests/node/pixelcnn.test.ts': 19,
  'tests/node/engine.test.ts': 14,
  'tests/node/web-prompt.test.ts': 13,
  'tests/node/text-conditioning.test.ts': 10,
};

/** Vitest's order, with the files of the table moved ahead, longest first. */
export class SlowestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const seconds = (f: TestSpecification) => SECONDS[relative(this.ctx.config.root, f.moduleId).split('\\').join('/')] ?? 0;
    const rank = new Map(base.map((f, i) => [f, i]));
    return [...base].sort((a, b) => seconds(b) - seconds(a) || rank.get(a)! - rank.get(b)!);
  }
}
