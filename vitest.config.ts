import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './web/headless.ts';

// Two projects in one `vitest run`:
//   node    — Dawn (npm `webgpu`) in Node. All files run serially in ONE forked process
//             (Dawn dislikes many devices/processes at once). Vitest 4 names: top-level
//             `pool`, `maxWorkers`, `fileParallelism`, `isolate` (there is no `poolOptions`
//             / `singleFork` any more). With `isolate: false` + `maxWorkers: 1` Vitest hands
//             every file to the same worker, so module state (e.g. a cached device) is shared.
//   browser — system Chromium (/usr/bin/chromium) driven by playwright-core with SwiftShader
//             WebGPU. `executablePath` is given, so Playwright never looks for (or downloads)
//             its own browser build.


export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/browser/**', '**/node_modules/**'],
          pool: 'forks',
          maxWorkers: 1,
          fileParallelism: false,
          isolate: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The engine reaches the Node-only `webgpu` package solely through
        // `import(/* @vite-ignore */ name)`; keep the optimizer away from it regardless.
        optimizeDeps: {
          exclude: ['webgpu'],
        },
        test: {
          name: 'browser',
          include: ['tests/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: {
                executablePath: CHROMIUM_PATH,
                args: CHROMIUM_ARGS,
              },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
