#!/usr/bin/env node
// Build kiln: bundle src/index.ts -> dist/index.js with esbuild, then emit .d.ts files with tsc.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { builtinModules, createRequire } from 'node:module';
import { existsSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const entry = 'src/index.ts';
if (!existsSync(entry)) {
  console.error(`build: ${entry} not found`);
  process.exit(1);
}

rmSync('dist', { recursive: true, force: true });

// Node-only things stay external: the Dawn binding and every Node builtin (bare and node:-prefixed).
const nodeBuiltins = builtinModules.filter((m) => !m.startsWith('_'));
const external = ['webgpu', 'node:*', ...nodeBuiltins, ...nodeBuiltins.map((m) => `${m}/*`)];

try {
  const result = await build({
    entryPoints: [entry],
    outfile: 'dist/index.js',
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    sourcemap: true,
    // platform 'neutral' has no default main fields; prefer ESM entries of any bundled dependency.
    mainFields: ['module', 'main'],
    conditions: ['import', 'module', 'default'],
    external,
    logLevel: 'warning',
  });
  if (result.errors.length > 0) process.exit(1);
} catch {
  // esbuild has already printed the errors
  process.exit(1);
}

const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (r.error) {
  console.error(r.error);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status ?? 1);

for (const f of ['dist/index.js', 'dist/index.d.ts']) {
  if (!existsSync(f)) {
    console.error(`build: expected ${f} was not produced`);
    process.exit(1);
  }
}
console.log('build: dist/index.js and dist/index.d.ts written');
