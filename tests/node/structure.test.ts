/**
 * The shape of the source tree: layers import downward only, the browser demo imports only the library,
 * every primitive has one complete definition, and no source file grows past the size a reader can hold.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_OPS, opDef } from '../../src/tensor/ops/index.ts';
import '../../src/index.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Layers, lowest first: a file may import from its own folder or from a folder of a lower rank.
 * `index.ts` at the top of src/ is the package entry and may import anything below the CLI.
 */
const RANK: Record<string, number> = {
  wgsl: 0,
  tensor: 1,
  autograd: 2,
  nn: 3,
  data: 3,
  io: 3,
  diffusion: 4,
  train: 5,
  'index.ts': 6,
  cli: 7,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers a file imports or re-exports (static and dynamic). */
function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith('.')) out.push(spec);
  }
  return out;
}

/** The layer of a path inside src/ (its first folder, or the file name at the top). */
const layerOf = (path: string) => relative(join(ROOT, 'src'), path).split(/[\\/]/)[0]!.replace(/\.js$/, '.ts');

/** The imports of (file, text) pairs in src/ that point to a folder of the same or a higher layer. */
function upwardImports(sources: [file: string, text: string][]): string[] {
  const upward: string[] = [];
  for (const [f, text] of sources) {
    const from = layerOf(f);
    for (const spec of importsOf(f, text)) {
      const to = layerOf(resolve(dirname(f), spec));
      if (to !== from && !(RANK[to]! < RANK[from]!)) upward.push(`${relative(ROOT, f)} imports ${spec} (${from} → ${to})`);
    }
  }
  return upward;
}

describe('source structure', () => {
  const src = files(join(ROOT, 'src'));

  it('every folder of src/ has a layer', () => {
    const unknown = [...new Set(src.map(layerOf))].filter((l) => !(l in RANK));
    expect(unknown).toEqual([]);
  });

  it('layers import downward only', () => {
    expect(upwardImports(src.map((f) => [f, readFileSync(f, 'utf8')]))).toEqual([]);
  });

  it('the checker reports an upward import', () => {
    const f = join(ROOT, 'src/tensor/x.ts');
    expect(upwardImports([[f, "import { Module } from '../nn/module.js';\nexport { scope } from './memory.js';"]])).toEqual(['src/tensor/x.ts imports ../nn/module.js (tensor → nn)']);
    expect(upwardImports([[join(ROOT, 'src/nn/x.ts'), "import type { Tensor } from '../tensor/index.js';\nconst m = await import('../diffusion/index.js');"]])).toEqual(['src/nn/x.ts imports ../diffusion/index.js (nn → diffusion)']);
  });

  it('the browser demo imports only the library, not the CLI', () => {
    const bad: string[] = [];
    for (const f of files(join(ROOT, 'web'))) {
      for (const spec of importsOf(f)) {
        const target = relative(ROOT, resolve(dirname(f), spec));
        if (!target.startsWith('src') && !target.startsWith('web')) bad.push(`${relative(ROOT, f)} imports ${spec}`);
        else if (target.startsWith(join('src', 'cli'))) bad.push(`${relative(ROOT, f)} imports ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('no source file is longer than 600 lines', () => {
    const long = src.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > 600);
    expect(long).toEqual([]);
  });

  it('every primitive is one complete definition: lowering or kernel, float64 reference, gradient rule', () => {
    const defs = [...BUILTIN_OPS].map(opDef);
    expect(defs.length).toBeGreaterThanOrEqual(50);
    const incomplete: string[] = [];
    for (const d of defs) {
      if (typeof d.reference !== 'function') incomplete.push(`${d.name}: no reference`);
      const lowered = 'lower' in d ? typeof d.lower === 'function' : 'kernel' in d && typeof d.kernel === 'function';
      if (!lowered) incomplete.push(`${d.name}: no lowering`);
      // leaves have no inputs to differentiate; every other primitive states its gradient (possibly zero)
      if (d.kind !== 'leaf' && typeof d.vjp !== 'function') incomplete.push(`${d.name}: no vjp`);
      if (d.kind === 'movement' && (typeof d.view !== 'function' || typeof d.shape !== 'function')) incomplete.push(`${d.name}: no view or shape rule`);
    }
    expect(incomplete).toEqual([]);
  });
});
