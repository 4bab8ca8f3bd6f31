/**
 * Kernel tuning per adapter. The first row whose test matches the adapter gives the kernel configuration;
 * `init({ tuning: name })` or the environment variable KILN_TUNING (Node) forces a row by name, so the
 * configuration chosen for GPUs runs — and is tested — on a software adapter too. Tuning measured on a
 * new GPU goes here as a row of its own.
 */
import type { KernelConfig } from './kernels.js';
import type { DeviceInfo } from './device.js';

/** The knobs of a row (the device limits are added at init). */
export type Tuning = Omit<KernelConfig, 'maxWorkgroupsPerDim'>;

/** One row of the tuning table. */
export interface TuningRow {
  name: string;
  /** Which adapters the row is for. */
  matches: (info: DeviceInfo) => boolean;
  config: Tuning;
}

/** Rows, most specific first; the last one matches every adapter. */
export const TUNING_TABLE: readonly TuningRow[] = [
  {
    // CPU drivers (lavapipe, SwiftShader, WARP): few wide threads, and each pipeline compiles at its first dispatch
    name: 'software',
    matches: (i) => i.driver !== 'hardware',
    config: {
      reducePartials: 4096,
      reduceMinChunk: 256,
      reduceMapping: 'chunk',
      // 8×8: since the tile is stored through a loop (its epilogue emitted once), no more code to compile
      // than 4×8, and the default UNet step's matmuls take 15–25 % less time (222/209 against 251/278 ms in
      // two alternating k.profile runs; the toy MLP step 20.2 against 22.4 ms)
      // on SwiftShader too (one process, old against new kernels alternating): 4×8 tiles ran 0.71–0.93× as
      // fast, 4×4 0.59–0.78×, 8×16 0.92–0.97× (on lavapipe 0.92–1.10×)
      matmulTile: [8, 8],
      // SwiftShader: 1 element per invocation ran the chain 0.65× as fast, 8 within noise
      elementsPerInvocation: 4,
      // vec4 loads: lavapipe's chain 1.8×, SwiftShader's 1.5× (see bench/README.md)
      vectorWidth: 4,
    },
  },
  {
    // every GPU vendor until a measurement gives one a row of its own
    name: 'hardware',
    matches: () => true,
    config: {
      reducePartials: 65536,
      reduceMinChunk: 64,
      reduceMapping: 'stride',
      matmulTile: [8, 8],
      elementsPerInvocation: 1,
      vectorWidth: 4,
    },
  },
];

/** The row for an adapter, or the row named `forced` (an error listing the names when there is none). */
export function tuningFor(info: DeviceInfo, forced?: string): TuningRow {
  if (forced !== undefined && forced !== 'auto') {
    const row = TUNING_TABLE.find((r) => r.name === forced);
    if (!row) throw new Error(`kiln.init: unknown tuning ${JSON.stringify(forced)}; expected 'auto' or one of ${TUNING_TABLE.map((r) => `'${r.name}'`).join(', ')}`);
    return row;
  }
  return TUNING_TABLE.find((r) => r.matches(info))!;
}
