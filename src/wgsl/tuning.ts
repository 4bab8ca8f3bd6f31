/**
 * Kernel tuning per adapter. The first row whose test matches the adapter gives the kernel configuration;
 * `init({ tuning: name })` or the environment variable KILN_TUNING (Node) forces a row by name, so the
 * configuration chosen for GPUs runs — and is tested — on a software adapter too. Tuning measured on a
 * new GPU goes here as a row of its own.
 */
import type { KernelConfig } from './kernels.js';
import type { DeviceInfo } from './device.js';

/** The knobs of a row (the device's limits and subgroup layout are added at init). */
export type Tuning = Omit<KernelConfig, 'maxWorkgroupsPerDim' | 'subgroupSize'>;

/** The knobs of CPU drivers (lavapipe, SwiftShader, WARP): few wide threads, and each pipeline compiles at its first dispatch. */
function softwareRow(): Tuning {
  return {
    reducePartials: 4096,
    reduceMinChunk: 256,
    reduceMapping: 'chunk',
    reduceTree: false,
    // 16×8 on lavapipe, where each invocation of a subgroup of 8 loads 2 of the 16 rows (matmulShareRows):
    // the default UNet step's matmuls took 101–138 ms of kernel time against 164–178 with 8×8 (k.profile,
    // alternating processes, 4 pairs), and a cold `kiln train --steps 3` compiled no slower (29.8 / 38.9
    // against 31.9 / 39.9 s). Before rows were shared, 8×8 beat 4×8 by 15–25 % and 8×16 ran 0.92–1.10× as fast.
    // The tile is stored through a loop (its epilogue emitted once), so a larger tile adds little code.
    matmulKernel: 'registers',
    matmulTile: [16, 8],
    // SwiftShader: 1 element per invocation ran the chain 0.65× as fast, 8 within noise
    elementsPerInvocation: 4,
    // vec4 loads: lavapipe's chain 1.8×, SwiftShader's 1.5× (see bench/README.md)
    vectorWidth: 4,
    // one step of k per iteration on lavapipe (see the SwiftShader row)
    matmulUnrollK: 1,
    // A's rows loaded once per subgroup and broadcast (where the device's subgroups are consecutive
    // invocations): a load costs these drivers far more than a broadcast. `npm run bench -- --quick` against
    // `--no-share`, alternating twice: 1024³ 36.6 / 27.1 against 24.1 / 25.0 GFLOP/s on lavapipe, 6.15 / 6.11
    // against 4.87 / 4.95 on SwiftShader; `bench:conv -- --quick` fwd + bwd 23.7 / 23.5 against 17.5 / 12.2
    // on lavapipe, 3.98 / 3.54 against 3.18 / 3.02 on SwiftShader
    matmulShareRows: true,
  };
}

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
    // SwiftShader: the software row with two steps of k per matmul loop iteration where B is read as vec4; one
    // process per setting, alternating: 1024³ 4.08–4.68 GFLOP/s against 3.53–3.65 with one step (four steps
    // 4.12–4.34); on lavapipe two ran the same within noise (1024³ 25.3 against 25.3) and four at half speed
    // 8×8 tiles: 4×8 ran 0.71–0.93× as fast, 4×4 0.59–0.78×, 8×16 0.92–0.97×; with rows shared (4 invocations per
    // subgroup, 2 rows each) 16×8 ran the 1024³ matmul at 5.57 GFLOP/s and 8×16 at 4.78 against 5.73 (one
    // process, alternating)
    name: 'swiftshader',
    matches: (i) => i.driver === 'swiftshader',
    config: { ...softwareRow(), matmulTile: [8, 8], matmulUnrollK: 2 },
  },
  {
    // the other CPU drivers (lavapipe, WARP)
    name: 'software',
    matches: (i) => i.driver !== 'hardware',
    config: softwareRow(),
  },
  {
    // every GPU vendor until a measurement gives one a row of its own
    name: 'hardware',
    matches: () => true,
    config: {
      reducePartials: 65536,
      reduceMinChunk: 64,
      reduceMapping: 'stride',
      reduceTree: true,
      // blocks of up to 64×64 staged in workgroup memory, 4×4 outputs per invocation (as tfjs-webgpu and ONNX
      // Runtime Web do for aligned operands); small-M matmuls get 16×256 or 32×128 blocks
      matmulKernel: 'shared',
      matmulTile: [4, 4],
      matmulUnrollK: 1,
      // not measured on a GPU yet (and a GPU's subgroup size may differ from one pipeline to another)
      matmulShareRows: false,
      elementsPerInvocation: 1,
      vectorWidth: 4,
    },
  },
];

/** A tuning asked for: 'auto', a row's name, or knobs that override the adapter's row. */
export type TuningChoice = string | Partial<Tuning>;

/** The allowed values of each knob, checked when a tuning is given as knobs. */
const KNOBS: { [K in keyof Tuning]: (v: unknown) => boolean } = {
  reducePartials: (v) => Number.isInteger(v) && (v as number) >= 1,
  reduceMinChunk: (v) => Number.isInteger(v) && (v as number) >= 1,
  reduceMapping: (v) => v === 'chunk' || v === 'stride',
  reduceTree: (v) => typeof v === 'boolean',
  matmulKernel: (v) => v === 'registers' || v === 'shared',
  matmulTile: (v) => Array.isArray(v) && v.length === 2 && v.every((t) => [1, 2, 4, 8, 16].includes(t)),
  matmulUnrollK: (v) => v === 1 || v === 2 || v === 4,
  matmulShareRows: (v) => typeof v === 'boolean',
  elementsPerInvocation: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 64,
  vectorWidth: (v) => v === 1 || v === 4,
};

/**
 * The row for an adapter, or the row named `forced`, or (knobs) the adapter's row with those knobs
 * changed, named '<row>+custom'. Unknown names, knobs and values are errors that list what is allowed.
 */
export function tuningFor(info: DeviceInfo, forced?: TuningChoice): TuningRow {
  if (forced !== undefined && typeof forced === 'object' && forced !== null) {
    for (const [key, v] of Object.entries(forced)) {
      const ok = KNOBS[key as keyof Tuning];
      if (!ok) throw new Error(`kiln.init: unknown tuning knob ${JSON.stringify(key)}; expected ${Object.keys(KNOBS).map((n) => `'${n}'`).join(', ')}`);
      if (!ok(v)) throw new Error(`kiln.init: tuning knob '${key}' cannot be ${JSON.stringify(v)}`);
    }
    const row = tuningFor(info);
    return { name: `${row.name}+custom`, matches: row.matches, config: { ...row.config, ...forced } };
  }
  if (forced !== undefined && forced !== 'auto') {
    const row = TUNING_TABLE.find((r) => r.name === forced);
    if (!row) throw new Error(`kiln.init: unknown tuning ${JSON.stringify(forced)}; expected 'auto' or one of ${TUNING_TABLE.map((r) => `'${r.name}'`).join(', ')}`);
    return row;
  }
  return TUNING_TABLE.find((r) => r.matches(info))!;
}
