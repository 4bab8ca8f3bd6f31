/**
 * Op conformance in Node (Dawn): every case of tests/shared/conformance.ts on the 'webgpu' device against
 * the float64 'cpu' reference, once with kernel fusion on and once with it off, plus the random streams.
 */
import * as k from '../../src/index.js';
import { conformanceSuite } from '../shared/suite.js';

conformanceSuite(k, 'node');
