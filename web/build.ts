/**
 * Bundles the demo page with esbuild: `web/main.ts` (the page) and `web/worker.ts` (kiln in a worker, from
 * the same `src/` as Node) become `main.js` and `worker.js`, next to `index.html`, `style.css` and the
 * default checkpoint (`checkpoints/`, listed in `checkpoints/index.json`).
 *
 *   npm run web:build [-- --out out/web]    writes a static site (serve the folder over http)
 */
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A file of the built site. */
export interface WebFile {
  body: Uint8Array;
  type: string;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json', '.json': 'application/json' };

/** The content type of a file name by extension. */
export function contentType(name: string): string {
  const ext = name.slice(name.lastIndexOf('.'));
  return TYPES[ext] ?? 'application/octet-stream';
}

/** Builds the page in memory: a map from site paths ('/index.html', '/main.js', …) to files. */
export async function buildWeb(opts: { minify?: boolean } = {}): Promise<Map<string, WebFile>> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'web/main.ts', worker: 'web/worker.ts' },
    outdir: 'out/web',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: opts.minify ?? false,
    write: false,
    // Node-only code paths of kiln load these with dynamic imports that never run in a browser
    external: ['webgpu', 'node:*'],
    logLevel: 'silent',
  });
  const files = new Map<string, WebFile>();
  const outdir = join(ROOT, 'out/web');
  for (const f of result.outputFiles) {
    const name = `/${f.path.slice(outdir.length + 1).replaceAll('\\', '/')}`;
    files.set(name, { body: f.contents, type: contentType(name) });
  }
  for (const name of ['index.html', 'style.css']) files.set(`/${name}`, { body: readFileSync(join(ROOT, 'web', name)), type: contentType(name) });
  // the page's default model: the tiny checkpoint of the tests, so sampling works on the first click
  files.set(`/${BUNDLED_CHECKPOINT.url}`, { body: readFileSync(join(ROOT, 'tests/fixtures/mnist-tiny.safetensors')), type: 'application/octet-stream' });
  files.set('/checkpoints/index.json', { body: new TextEncoder().encode(JSON.stringify([BUNDLED_CHECKPOINT])), type: 'application/json' });
  return files;
}

/** A checkpoint the page offers: its URL (relative to the page) and what it is. */
export interface CheckpointEntry {
  url: string;
  label: string;
}

/** The checkpoint bundled with the page (the tests' tiny UNet). */
export const BUNDLED_CHECKPOINT: CheckpointEntry = { url: 'checkpoints/mnist-tiny.safetensors', label: 'tiny UNet (41k parameters, a few minutes of training): rough digits' };

/** Writes the built site to a folder. */
export async function writeWeb(outDir: string, opts: { minify?: boolean } = {}): Promise<string[]> {
  const files = await buildWeb(opts);
  for (const [name, f] of files) {
    mkdirSync(dirname(join(outDir, name)), { recursive: true });
    writeFileSync(join(outDir, name), f.body);
  }
  return [...files.keys()];
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const i = process.argv.indexOf('--out');
  const out = resolve(i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : join(ROOT, 'out/web'));
  try {
    const names = await writeWeb(out, { minify: process.argv.includes('--minify') });
    console.log(`wrote ${names.length} files to ${out}: ${names.join(', ')}`);
    console.log('The MNIST training data and checkpoints are fetched by URL; `npm run web` serves them too.');
  } catch (e) {
    console.error(`web build failed: ${(e as Error).message}`);
    process.exit(1);
  }
}
