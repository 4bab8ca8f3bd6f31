import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './web/headless.ts';
import { SlowestFirstSequencer } from './tests/sequencer.ts';

// Two projects in one `vitest run`:
//   node    — Dawn (npm `webgpu`) in Node. Each file runs in a fresh forked process (`isolate: true`):
//             on lavapipe every live descriptor set is a memfd mapping that Dawn's pools keep,
//             so one process running every file reached 42,000 of the kernel's 65,530 mappings
//             (vm.max_map_count, a per-process limit) and a worker died in CI; one file peaks near
//             25,000. Two files run at once (`maxWorkers: 2`): a cold pipeline compiles on one
//             thread, so one file's compiles overlap the other's kernels, and the suite from an
//             empty shader cache took 511 s against 917 s one file at a time (same machine, 2 cores).
//             Vitest 4 names: top-level `pool`, `maxWorkers`, `fileParallelism`, `isolate`.
//   browser — system Chromium (/usr/bin/chromium) driven by playwright-core with SwiftShader
//             WebGPU. `executablePath` is given, so Playwright never looks for (or downloads)
//             its own browser build.


export default defineConfig({
  test: {
    sequence: { sequencer: SlowestFirstSequencer },
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/browser/**', '**/node_modules/**'],
          pool: 'forks',
          maxWorkers: 2,
          isolate: true,
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
          maxWorkers: 2,
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
