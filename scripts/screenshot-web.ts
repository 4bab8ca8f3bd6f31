/**
 * Screenshots of the demo page in headless Chromium (SwiftShader WebGPU): at landing, while the toy model
 * trains (live samples), after toy sampling, after sampling the default MNIST checkpoint, and while a
 * small MNIST model trains in the page (live sample grids).
 *
 *   npm run web:screenshots [-- --out out/web-screenshots]
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { ROOT } from '../web/build.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../web/headless.ts';
import { startServer } from '../web/serve.ts';

type Demo = { ready: boolean; busy: boolean; fatal: string | null; toy: { previews: number; samples: unknown; error: string | null }; mnist: { defaultLoaded: boolean; samples: unknown; error: string | null; model: unknown } };

const i = process.argv.indexOf('--out');
const out = resolve(i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : join(ROOT, 'out/web-screenshots'));
mkdirSync(out, { recursive: true });

/** Waits until `test(kilnDemo)` holds (polling), failing with the page's error if a section reports one. */
async function until(page: Page, test: string, timeout = 300_000): Promise<void> {
  await page.waitForFunction(`(() => { const d = globalThis.kilnDemo; if (d.toy.error || d.mnist.error || d.fatal) return true; return ${test}; })()`, null, { timeout, polling: 200 });
  const err = await page.evaluate(() => {
    const d = (globalThis as unknown as { kilnDemo: Demo }).kilnDemo;
    return d.fatal ?? d.toy.error ?? d.mnist.error;
  });
  if (err) throw new Error(`the page reported: ${err}`);
}

const server = await startServer({ port: 0, log: false });
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(server.url);
  await until(page, 'd.ready && d.mnist.defaultLoaded && !d.busy', 120_000);
  const shots: string[] = [];
  const shot = async (name: string, selector?: string) => {
    const file = join(out, name);
    if (selector) await page.locator(selector).screenshot({ path: file });
    else await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  };
  await shot('landing.png');

  await page.click('#toy-train');
  await until(page, 'd.toy.previews >= 4');
  await shot('toy-training.png', '#toy');
  await until(page, 'd.toy.samples !== null && !d.busy');
  // the replay animation ends after about 40 frames / 12 per second
  await page.waitForTimeout(4000);
  await shot('toy-sampled.png', '#toy');

  await page.click('#mnist-sample');
  await until(page, 'd.mnist.samples !== null && !d.busy');
  await shot('mnist-sampled.png', '#mnist');

  await page.fill('#mnist-train-steps', '300');
  await page.click('#mnist-train');
  await page.waitForFunction('globalThis.kilnDemo.mnist.previews >= 3 || globalThis.kilnDemo.mnist.error !== null', null, { timeout: 600_000, polling: 500 });
  await shot('mnist-training.png', '#mnist');
  await page.click('#mnist-stop');
  await until(page, '!d.busy');
  console.log(`wrote ${shots.join(', ')}`);
} finally {
  await browser.close();
  await server.close();
}
