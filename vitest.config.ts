import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './web/headless.ts';

// Two projects in one `vitest run`:
//   node    — Dawn (npm `webgpu`) in Node. Files run one at a time (Dawn dislikes many
//             devices/processes at once), each in a fresh forked process (`isolate: true`):
//             on lavapipe every live descriptor set is a memfd mapping that Dawn's pools keep,
//             so one process running every file reached 42,000 of the kernel's 65,530 mappings
//             (vm.max_map_count) and a worker died in CI; one file peaks near 25,000.
//             Vitest 4 names: top-level `pool`, `maxWorkers`, `fileParallelism`, `isolate`.
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
