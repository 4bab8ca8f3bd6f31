/** The demo page in headless Chromium, as the test files that drive it start, open and check it. */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../web/headless.ts';
import { startServer, type WebServer } from '../../web/serve.ts';

/** The page's state the tests wait on before using a tab. */
type Ready = { kilnDemo: { ready: boolean; busy: boolean; fatal: string | null; mnist: { defaultLoaded: boolean } } };

/**
 * A new tab on the demo page at `url`, its console errors, uncaught exceptions and failed requests pushed
 * onto `errors`, once its worker is ready with the page's default checkpoint loaded (or has failed).
 */
export async function openDemo(browser: Browser, url: string, errors: string[], viewport?: { width: number; height: number }): Promise<Page> {
  const p = await browser.newPage(viewport ? { viewport } : {});
  p.on('console', (m) => {
    if (m.type() === 'error') errors.push(`page: ${m.text()}`);
  });
  p.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  p.on('worker', (w) => w.on('console', (m) => {
    if (m.type() === 'error') errors.push(`worker: ${m.text()}`);
  }));
  p.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  await p.goto(url);
  await p.waitForFunction(() => {
    const st = (globalThis as unknown as Ready).kilnDemo;
    return (st.ready && st.mnist.defaultLoaded && !st.busy) || st.fatal !== null;
  }, null, { timeout: 60_000 });
  return p;
}

/** The server and browser of a test file that drives the page (see `demoSession`). */
export interface DemoSession {
  readonly server: WebServer;
  readonly browser: Browser;
  /** Console errors, uncaught exceptions and failed requests of every tab opened with `open`; each test must leave it empty. */
  readonly errors: string[];
  /** A new tab on the page, once its worker is ready (`openDemo`). */
  open(viewport?: { width: number; height: number }): Promise<Page>;
}

/**
 * Registers the hooks of a test file that drives the page: the page's server and a headless Chromium start
 * before its tests and close after them, and every test must leave no console error behind.
 */
export function demoSession(): DemoSession {
  let server: WebServer | null = null;
  let browser: Browser | null = null;
  const errors: string[] = [];
  beforeAll(async () => {
    server = await startServer({ port: 0, log: false });
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  });
  afterEach(() => {
    const left = errors.splice(0);
    expect(left, 'console errors, uncaught exceptions or failed requests in the page during this test').toEqual([]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  const started = <T>(v: T | null, what: string): T => {
    if (!v) throw new Error(`demoSession: the ${what} has not started (use it in a test or a later hook)`);
    return v;
  };
  return {
    get server() {
      return started(server, 'server');
    },
    get browser() {
      return started(browser, 'browser');
    },
    errors,
    open: (viewport) => openDemo(started(browser, 'browser'), started(server, 'server').url, errors, viewport),
  };
}
