/**
 * Op conformance in Node (Dawn): every case of tests/shared/conformance.ts on the 'webgpu' device against
 * the float64 'cpu' reference, with kernel fusion on, with it off, and with the kernels tuned for GPUs
 * (forced on whatever adapter runs the tests), plus the random streams.
 */
import * as k from '../../src/index.js';
import { conformanceSuite } from '../shared/suite.js';

conformanceSuite(k, 'node', ['hardware']);
