/**
 * kiln against PyTorch, from committed fixtures (no Python needed): every file in tests/fixtures/torch holds
 * one case written by scripts/torch-golden.py — seeded float32 inputs, a module's state dict under PyTorch's
 * names, and what PyTorch 1.13 computed from them in float64: the output, and after backward of
 * loss = (output · probe).sum() with a seeded probe, the gradient of every differentiable input and every
 * parameter (plus buffers updated by the forward, e.g. BatchNorm's running statistics). Here kiln builds the
 * same module (loading the state dict with `loadStateDict(…, { strict: true })`) or calls the same `k.F`
 * function, runs forward and backward of the same probe, and compares.
 *
 * Tolerance: for each compared float tensor `ref` (output, each gradient, each updated buffer), with
 * m = max|ref| over the tensor, every element must satisfy |kiln − ref| ≤ 1.2e-4 · m; shapes must be equal
 * and integer tensors (num_batches_tracked) exactly equal. Every reference gradient must be non-zero
 * somewhere, so a broken vector-Jacobian product cannot pass by comparing zeros.
 *
 * A last test checks that every `k.F` function and `k.nn` layer has a fixture (or a stated reason not to).
 * KILN_TORCH_REPORT=1 prints each case's largest error and the pipelines and time it took.
 *
 * Regenerate the fixtures with PyTorch: `apt-get install python3-torch` (Debian), then from the repository
 * root `/usr/bin/python3 scripts/torch-golden.py` (the script's docstring describes the file layout).
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/torch');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.safetensors')).sort();
/** Relative tolerance, as a fraction of the reference tensor's largest magnitude. */
const TOL = 1.2e-4;

beforeAll(async () => {
  await k.init();
  // every primitive in a kernel of its own: the kernels of the conformance suite's unfused pass, so a cold
  // run compiles few new pipelines (that suite checks the fused kernels against the unfused ones, op by op)
  k.setFusion(false);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Options = Record<string, any>;
type Inputs = Record<string, k.Tensor>;

/** A module case: the kiln module built from PyTorch's constructor arguments, and its forward. */
interface ModuleBuilder {
  covers: string[];
  make(o: Options): k.nn.Module;
  forward?(m: k.nn.Module, x: Inputs, o: Options): k.Tensor;
}
/** A function case: the kiln call for PyTorch's keyword arguments. */
interface FunctionBuilder {
  covers: string[];
  call(x: Inputs, o: Options): k.Tensor;
}

const nn = k.nn, F = k.F;
const layer = (m: k.nn.Module) => m as k.nn.Layer;

const MODULES: Record<string, ModuleBuilder> = {
  'nn.Linear': { covers: ['nn.Linear'], make: (o) => new nn.Linear(o.in_features, o.out_features, { bias: o.bias }) },
  'nn.Conv2d': {
    covers: ['nn.Conv2d'],
    make: (o) => new nn.Conv2d(o.in_channels, o.out_channels, o.kernel_size, { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups, bias: o.bias }),
  },
  'nn.ConvTranspose2d': {
    covers: ['nn.ConvTranspose2d'],
    make: (o) => new nn.ConvTranspose2d(o.in_channels, o.out_channels, o.kernel_size, {
      stride: o.stride, padding: o.padding, outputPadding: o.output_padding, dilation: o.dilation, groups: o.groups, bias: o.bias,
    }),
  },
  'nn.GroupNorm': { covers: ['nn.GroupNorm'], make: (o) => new nn.GroupNorm(o.num_groups, o.num_channels, { eps: o.eps, affine: o.affine }) },
  'nn.LayerNorm': { covers: ['nn.LayerNorm'], make: (o) => new nn.LayerNorm(o.normalized_shape, { eps: o.eps, elementwiseAffine: o.elementwise_affine }) },
  'nn.RMSNorm': { covers: ['nn.RMSNorm'], make: (o) => new nn.RMSNorm(o.normalized_shape, o.eps) },
  'nn.BatchNorm2d': { covers: ['nn.BatchNorm2d'], make: (o) => new nn.BatchNorm2d(o.num_features, o.eps, o.momentum) },
  'nn.Embedding': { covers: ['nn.Embedding'], make: (o) => new nn.Embedding(o.num_embeddings, o.embedding_dim), forward: (m, x) => layer(m).forward(x.ids!) },
  'nn.MultiheadAttention': {
    covers: ['nn.MultiheadAttention'],
    make: (o) => new nn.MultiheadAttention(o.embed_dim, o.num_heads, { kdim: o.kdim, vdim: o.vdim }),
    forward: (m, x, o) => (m as k.nn.MultiheadAttention).forward(x.query!, x.key, x.value, { mask: x.mask, causal: o.causal, keyMask: x.key_mask }),
  },
  'nn.AdaIN': {
    covers: ['nn.AdaIN'],
    make: (o) => new nn.AdaIN(o.channels, o.style_dim, o.eps),
    forward: (m, x) => (m as k.nn.AdaIN).forward(x.x!, x.style!),
  },
  'nn.ReLU': { covers: ['nn.ReLU'], make: () => new nn.ReLU() },
  'nn.SiLU': { covers: ['nn.SiLU'], make: () => new nn.SiLU() },
  'nn.Tanh': { covers: ['nn.Tanh'], make: () => new nn.Tanh() },
  'nn.Sigmoid': { covers: ['nn.Sigmoid'], make: () => new nn.Sigmoid() },
  'nn.GELU': { covers: ['nn.GELU'], make: (o) => new nn.GELU(o.approximate) },
  'nn.LeakyReLU': { covers: ['nn.LeakyReLU'], make: (o) => new nn.LeakyReLU(o.negative_slope) },
  'nn.Sequential': {
    covers: ['nn.Sequential', 'nn.Dropout', 'nn.Flatten', 'nn.Identity'],
    make: () => new nn.Sequential(new nn.Conv2d(2, 3, 3, { padding: 1 }), new nn.BatchNorm2d(3), new nn.SiLU(), new nn.Dropout(0.3), new nn.Flatten(), new nn.Identity(), new nn.Linear(48, 5)),
  },
};

const unary = (name: string, f: (x: k.Tensor, o: Options) => k.Tensor): FunctionBuilder => ({ covers: [name], call: (x, o) => f(x.x!, o) });

const FUNCTIONS: Record<string, FunctionBuilder> = {
  'F.linear': { covers: ['F.linear'], call: (x) => F.linear(x.x!, x.weight!, x.bias) },
  'F.conv1d': { covers: ['F.conv1d'], call: (x, o) => F.conv1d(x.x!, x.weight!, x.bias, { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups }) },
  'F.conv2d': { covers: ['F.conv2d'], call: (x, o) => F.conv2d(x.x!, x.weight!, x.bias, { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups }) },
  'F.conv_transpose2d': {
    covers: ['F.convTranspose2d'],
    call: (x, o) => F.convTranspose2d(x.x!, x.weight!, x.bias, { stride: o.stride, padding: o.padding, outputPadding: o.output_padding, groups: o.groups, dilation: o.dilation }),
  },
  'F.avg_pool2d': { covers: ['F.avgPool2d'], call: (x, o) => F.avgPool2d(x.x!, o.kernel_size, { stride: o.stride, padding: o.padding }) },
  'F.max_pool2d': { covers: ['F.maxPool2d'], call: (x, o) => F.maxPool2d(x.x!, o.kernel_size, { stride: o.stride, padding: o.padding }) },
  'F.adaptive_avg_pool2d': { covers: ['F.adaptiveAvgPool2d'], call: (x, o) => F.adaptiveAvgPool2d(x.x!, o.output_size) },
  'F.interpolate': {
    covers: ['F.interpolate'],
    call: (x, o) => F.interpolate(x.x!, { size: o.size, scaleFactor: o.scale_factor, mode: o.mode, alignCorners: o.align_corners }),
  },
  'F.pixel_shuffle': { covers: ['F.pixelShuffle'], call: (x, o) => F.pixelShuffle(x.x!, o.upscale_factor) },
  'F.pixel_unshuffle': { covers: ['F.pixelUnshuffle'], call: (x, o) => F.pixelUnshuffle(x.x!, o.downscale_factor) },
  'F.group_norm': { covers: ['F.groupNorm'], call: (x, o) => F.groupNorm(x.x!, o.num_groups, x.weight, x.bias, o.eps) },
  'F.layer_norm': { covers: ['F.layerNorm'], call: (x, o) => F.layerNorm(x.x!, o.normalized_shape, x.weight, x.bias, o.eps) },
  'F.batch_norm': { covers: ['F.batchNorm'], call: (x, o) => F.batchNorm(x.x!, x.running_mean!, x.running_var!, x.weight, x.bias, o.training, o.momentum, o.eps) },
  'kiln.rmsNorm': { covers: ['F.rmsNorm'], call: (x, o) => F.rmsNorm(x.x!, o.normalized_shape, x.weight, o.eps) },
  'kiln.scaledDotProductAttention': {
    covers: ['F.scaledDotProductAttention'],
    call: (x, o) => F.scaledDotProductAttention(x.q!, x.k!, x.v!, { mask: x.mask, causal: o.causal, scale: o.scale }),
  },
  'F.embedding': { covers: ['F.embedding'], call: (x) => F.embedding(x.ids!, x.weight!) },
  'F.pad': { covers: ['F.pad'], call: (x, o) => F.pad(x.x!, o.pad, o.mode, o.value) },
  'F.relu': unary('F.relu', (x) => F.relu(x)),
  'F.silu': unary('F.silu', (x) => F.silu(x)),
  'F.gelu': unary('F.gelu', (x, o) => F.gelu(x, o.approximate)),
  'F.sigmoid': unary('F.sigmoid', (x) => F.sigmoid(x)),
  'F.tanh': unary('F.tanh', (x) => F.tanh(x)),
  'F.logsigmoid': unary('F.logsigmoid', (x) => F.logsigmoid(x)),
  'F.leaky_relu': unary('F.leakyRelu', (x, o) => F.leakyRelu(x, o.negative_slope)),
  'F.softplus': unary('F.softplus', (x, o) => F.softplus(x, o.beta, o.threshold)),
  'F.softmax': unary('F.softmax', (x, o) => F.softmax(x, o.dim)),
  'F.log_softmax': unary('F.logSoftmax', (x, o) => F.logSoftmax(x, o.dim)),
  'F.normalize': unary('F.normalize', (x, o) => {
    expect(o.p).toBe(2); // kiln's normalize is the 2-norm
    return F.normalize(x, o.dim, o.eps);
  }),
  'Tensor.logsumexp': unary('Tensor.logsumexp', (x, o) => x.logsumexp(o.dim, { keepDim: o.keepdim })),
  'Tensor.cumsum': unary('Tensor.cumsum', (x, o) => x.cumsum(o.dim)),
  'F.mse_loss': { covers: ['F.mseLoss'], call: (x, o) => F.mseLoss(x.input!, x.target!, { reduction: o.reduction }) },
  'F.l1_loss': { covers: ['F.l1Loss'], call: (x, o) => F.l1Loss(x.input!, x.target!, { reduction: o.reduction }) },
  'F.nll_loss': {
    covers: ['F.nllLoss'],
    call: (x, o) => F.nllLoss(x.input!, x.target!, { weight: x.weight, ignoreIndex: o.ignore_index, reduction: o.reduction }),
  },
  'F.cross_entropy': {
    covers: ['F.crossEntropy'],
    call: (x, o) => F.crossEntropy(x.input!, x.target!, { weight: x.weight, ignoreIndex: o.ignore_index, labelSmoothing: o.label_smoothing, reduction: o.reduction }),
  },
  'F.binary_cross_entropy_with_logits': {
    covers: ['F.binaryCrossEntropyWithLogits'],
    call: (x, o) => F.binaryCrossEntropyWithLogits(x.input!, x.target!, { weight: x.weight, posWeight: x.pos_weight, reduction: o.reduction }),
  },
  'kiln.klDivGaussian': { covers: ['F.klDivGaussian'], call: (x, o) => F.klDivGaussian(x.mean!, x.logvar!, { reduction: o.reduction }) },
  'kiln.modulate': { covers: ['nn.modulate'], call: (x) => nn.modulate(x.x!, x.shift!, x.scale!) },
  'kiln.adaIN': { covers: ['F.adaIN'], call: (x, o) => F.adaIN(x.x!, x.weight!, x.bias!, o.eps) },
  'kiln.timestepEmbedding': { covers: ['nn.timestepEmbedding'], call: (x, o) => nn.timestepEmbedding(x.t!, o.dim, o.max_period) },
};

/**
 * What the fixtures do not compare, with the reason: `k.F` functions and `k.nn` layers not listed here must
 * be covered by some fixture (see the coverage test), so a new op needs a case in scripts/torch-golden.py.
 */
const NOT_COVERED: Record<string, string> = {
  'F.dropout': 'random (its mask comes from kiln\'s generator); in eval it is the identity, covered inside nn.Sequential',
  'F.oneHot': 'integer output, nothing to differentiate',
  'nn.fourierFeatures': 'cos/sin of fixed random frequencies: the same ops as timestepEmbedding',
  'nn.Module': 'base class', 'nn.Layer': 'base class', 'nn.ModuleList': 'a container without a forward',
  'nn.MaskedConv2d': 'Conv2d (compared) of its weight times a fixed 0/1 mask; its causality is checked by autograd in pixelcnn.test.ts',
  'nn.CrossAttention': 'MultiheadAttention with kdim/vdim and keyMask (compared) applied to a feature map as tokens; checked against float64 and by gradcheck in text-conditioning.test.ts',
  'nn.WordPool': "Embedding (compared) summed over a caption's real tokens and scaled; checked against float64 in text-conditioning.test.ts",
  'nn.NoiseInjection': 'random (its noise comes from kiln\'s generator): x + weight·noise, checked in stylegan.test.ts (deterministic at zero scale, given noise maps)',
};
/** kiln's ready-made networks, built from the layers compared here. */
const MODELS = ['LeNet', 'UNet', 'ResBlock', 'AttentionBlock', 'DiT', 'DiTBlock', 'VAE', 'VAEEncoder', 'VAEDecoder', 'VAEResBlock', 'PatchDiscriminator', 'MLPGenerator', 'MLPDiscriminator', 'PixelCNN', 'GatedPixelBlock', 'TextEncoder', 'TextEncoderBlock', 'CrossTransformerBlock', 'SpatialTransformer', 'StyleGenerator', 'MappingNetwork', 'StyleLayer'];

interface Meta {
  case: string; kind: 'module' | 'function'; op: string; options: Options; inputs: string[]; grad_inputs: string[];
  state: string[]; grads: string[]; after: string[]; training: boolean;
}

function parseMeta(md: Record<string, string>): Meta {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(md)) out[key] = key === 'case' || key === 'kind' || key === 'op' || key === 'torch' ? v : JSON.parse(v);
  return out as unknown as Meta;
}

/** max over elements of |got − ref| / max|ref| (0 when both are all zeros); throws on a shape or integer mismatch. */
async function relError(what: string, got: k.Tensor, ref: k.Tensor): Promise<{ err: number; scale: number }> {
  expect(got.shape, `${what}: shape`).toEqual(ref.shape);
  const [g, r] = await Promise.all([got.data(), ref.data()]);
  if (ref.dtype !== 'f32') {
    expect(Array.from(g), `${what}: integer values`).toEqual(Array.from(r));
    return { err: 0, scale: 1 };
  }
  let scale = 0, worst = 0, at = -1;
  for (let i = 0; i < r.length; i++) scale = Math.max(scale, Math.abs(r[i]!));
  for (let i = 0; i < r.length; i++) {
    const e = Math.abs(g[i]! - r[i]!);
    if (!(e <= worst)) { worst = e; at = i; } // NaN in kiln's result becomes the worst error
  }
  const err = scale === 0 ? (worst === 0 ? 0 : Infinity) : worst / scale;
  if (!(err <= TOL)) throw new Error(`${what}: |kiln − torch| = ${worst} at element ${at} (kiln ${g[at]}, torch ${r[at]}) is ${err.toExponential(2)} of max|torch| = ${scale}, above ${TOL}`);
  return { err, scale };
}

/** Per case: the largest error (as a fraction of max|ref|) over the compared tensors, and what it cost. */
const report: [string, number][] = [];

describe('PyTorch golden fixtures (tests/fixtures/torch)', () => {
  let metas: Meta[] = [];
  beforeAll(async () => {
    metas = await Promise.all(FILES.map(async (f) => parseMeta((await k.loadHeader(join(DIR, f))).metadata)));
  });

  it('has at least 40 cases, each with a kiln builder', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(40);
    for (const m of metas) expect(m.kind === 'module' ? MODULES[m.op] : FUNCTIONS[m.op], `kiln builder for ${m.kind} ${m.op} (${m.case})`).toBeTruthy();
  });

  for (const file of FILES) {
    it(file.replace(/\.safetensors$/, ''), async () => {
      k.resetStats();
      const t0 = performance.now();
      const { tensors, metadata } = await k.loadWithMetadata(join(DIR, file));
      const meta = parseMeta(metadata);
      const x: Inputs = {};
      for (const name of meta.inputs) {
        x[name] = tensors[`input.${name}`]!;
        if (meta.grad_inputs.includes(name)) x[name].requiresGrad = true;
      }
      let module: k.nn.Module | null = null;
      let out: k.Tensor;
      if (meta.kind === 'module') {
        const b = MODULES[meta.op];
        if (!b) throw new Error(`no kiln builder for module ${meta.op}`);
        module = b.make(meta.options);
        const sd: Record<string, k.Tensor> = {};
        for (const name of meta.state) sd[name] = tensors[`state.${name}`]!;
        module.loadStateDict(sd, { strict: true });
        module.train(meta.training);
        out = b.forward ? b.forward(module, x, meta.options) : layer(module).forward(x[meta.inputs[0]!]!);
      } else {
        const b = FUNCTIONS[meta.op];
        if (!b) throw new Error(`no kiln builder for function ${meta.op}`);
        out = b.call(x, meta.options);
      }
      out.mul(tensors.probe!).sum().backward();
      // everything compared, computed in one go (the scheduler plans the forward and backward together)
      const state = module?.stateDict() ?? {};
      await k.realize(out, ...meta.grads.map((g) => (g.startsWith('input.') ? x[g.slice(6)] : state[g.slice(6)])?.grad).filter((t): t is k.Tensor => !!t));

      let worst = (await relError('output', out, tensors.output!)).err;
      expect(meta.grads.length, 'the case has gradients to compare').toBeGreaterThan(0);
      for (const g of meta.grads) {
        const [kind, name] = [g.slice(0, g.indexOf('.')), g.slice(g.indexOf('.') + 1)];
        const src = kind === 'input' ? x[name] : state[name];
        expect(src?.grad, `kiln computed a gradient for ${g}`).toBeTruthy();
        const { err, scale } = await relError(`grad of ${g}`, src!.grad!, tensors[`grad.${g}`]!);
        expect(scale, `the reference gradient of ${g} is non-zero`).toBeGreaterThan(0);
        worst = Math.max(worst, err);
      }
      for (const name of meta.after) {
        const t = module ? state[name]! : x[name]!;
        worst = Math.max(worst, (await relError(`${name} after the forward`, t, tensors[`after.${name}`]!)).err);
      }
      const st = k.stats();
      report.push([`${meta.case} ${st.pipelinesCompiled} pipelines, ${st.kernels} kernels, ${(performance.now() - t0).toFixed(0)} ms`, worst]);
      module?.zeroGrad();
      for (const t of Object.values(x)) t.grad?.dispose();
      for (const t of [...Object.values(tensors), ...Object.values(state)]) t.dispose();
    });
  }

  it('covers every k.F function and k.nn layer except those listed with a reason', () => {
    const coveredOps = new Set(metas.flatMap((m) => (m.kind === 'module' ? MODULES[m.op] : FUNCTIONS[m.op])?.covers ?? []));
    // every k.F function; every k.nn module class but the models; k.nn's own ops (the rest of k.nn's functions are k.F's)
    const names = [
      ...Object.entries(k.F).filter(([, v]) => typeof v === 'function').map(([n]) => `F.${n}`),
      ...Object.entries(k.nn)
        .filter(([n, v]) => typeof v === 'function' && !MODELS.includes(n) && (v === k.nn.Module || v.prototype instanceof k.nn.Module || ['modulate', 'timestepEmbedding', 'fourierFeatures'].includes(n)))
        .map(([n]) => `nn.${n}`),
    ];
    expect(names).toContain('nn.MultiheadAttention');
    const missing = names.filter((n) => !coveredOps.has(n) && !(n in NOT_COVERED));
    expect(missing, 'k.F / k.nn members without a PyTorch fixture').toEqual([]);
  });
});

afterAll(() => {
  k.setFusion(true);
  if (process.env.KILN_TORCH_REPORT) {
    for (const [c, e] of report.sort((a, b) => b[1] - a[1])) console.log(`${e.toExponential(2)}  ${c}`);
  }
});
