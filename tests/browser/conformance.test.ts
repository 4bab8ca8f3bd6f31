/**
 * Op conformance in the browser (Chromium, SwiftShader WebGPU): the same cases as the Node suite, compared
 * with the same float64 'cpu' reference on the same deterministic inputs, so passing both proves that the
 * browser and Node agree; the Philox stream is checked bit for bit against `k.philox4x32`. The fused pass runs
 * again with the kernels tuned for GPUs (workgroup-tiled matmuls, interleaved reductions) forced on SwiftShader.
 */
import * as k from '../../src/index.js';
import { conformanceSuite } from '../shared/suite.js';

conformanceSuite(k, 'browser', ['hardware']);
