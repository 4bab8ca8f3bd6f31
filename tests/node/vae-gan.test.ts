/**
 * VAE, GAN pieces and latent diffusion, each checked against an independent reference: float64 finite
 * differences on the CPU reference (ELBO gradients, R1 and its parameter gradient), closed forms
 * (ELBO terms, reparameterization moments and pathwise gradients, slerp), a hand-computed ratio
 * (adaptive weight), mode coverage of a trained 2D GAN, and the CLI end to end on a tiny model.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { sampleCommand, trainCommand } from '../../src/cli/diffusion.ts';
import { GANTrainer, VAE_METRICS, VAE_TRAIN_DEFAULTS, VAETrainer } from '../../src/train/index.ts';
import { evalVaeCommand, isVAECheckpoint, trainVaeCommand } from '../../src/cli/vae.ts';
import { close, values } from '../shared/util.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-vae-'));

beforeAll(async () => {
  await k.init();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A VAE small enough for float64 finite differences: 1×4×4 images → 1×2×2 latents. */
const TINY_VAE: Partial<k.nn.VAEConfig> = { channels: 1, size: 4, patch: 1, widths: [4, 4], depth: 1, latentChannels: 1, groups: 2 };

/** Central difference of `f` with respect to element `i` of `param` (float64, CPU reference). */
async function paramDerivative(param: k.Tensor, i: number, f: () => k.Tensor, eps = 1e-6): Promise<number> {
  const base = Float64Array.from(await param.data());
  const at = async (delta: number) => {
    const v = base.slice();
    v[i] += delta;
    param.assign(k.tensor(v, { shape: param.shape, device: 'cpu' }));
    return k.scope(() => f().item());
  };
  const d = ((await at(eps)) - (await at(-eps))) / (2 * eps);
  param.assign(k.tensor(base, { shape: param.shape, device: 'cpu' }));
  return d;
}

describe('VAE', () => {
  it('maps 1×28×28 to 4×7×7 latents by default, with latent-diffusion parameter names, and rejects bad shapes', async () => {
    k.manualSeed(0);
    const vae = new k.nn.VAE();
    expect(vae.latentShape).toEqual([4, 7, 7]);
    const x = k.randn([2, 1, 28, 28]);
    const { mean, logvar } = vae.encode(x);
    expect(mean.shape).toEqual([2, 4, 7, 7]);
    expect(logvar.shape).toEqual([2, 4, 7, 7]);
    expect(vae.decode(mean).shape).toEqual([2, 1, 28, 28]);
    const names = Object.keys(vae.stateDict());
    for (const n of ['encoder.conv_in.weight', 'encoder.down.0.block.0.conv1.weight', 'encoder.down.0.downsample.weight', 'encoder.down.1.block.0.nin_shortcut.weight',
      'encoder.mid.block_2.norm2.bias', 'quant_conv.weight', 'post_quant_conv.bias', 'decoder.up.1.upsample.weight', 'decoder.up.0.block.1.conv2.weight', 'decoder.conv_out.weight', 'logvar']) {
      expect(names).toContain(n);
    }
    expect(() => vae.encode(k.zeros([2, 1, 27, 27]))).toThrow(/VAE\.encode: expected images \[N, 1, 28, 28\], got \[2, 1, 27, 27\]/);
    expect(() => vae.decode(k.zeros([2, 3, 7, 7]))).toThrow(/VAE\.decode: expected latents \[N, 4, 7, 7\], got \[2, 3, 7, 7\]/);
    expect(() => new k.nn.VAE({ widths: [8, 16, 32, 64] })).toThrow(/VAE: image size 28 must be divisible by patch 2 × 2\^3 = 16 for 4 levels/);
    expect(() => new k.nn.VAE({ widths: [12, 16] })).toThrow(/VAE: width 12 must be divisible by groups 8/);
    expect(() => k.nn.reparameterize(k.zeros([2, 3]), k.zeros([3, 2]))).toThrow(/reparameterize: mean \[2, 3\] and logvar \[3, 2\] must have the same shape/);
    expect(() => k.nn.vaeLoss(x, k.zeros([2, 1, 28, 27]), mean, logvar, vae.logvar)).toThrow(/vaeLoss: images \[2, 1, 28, 28\] and reconstructions \[2, 1, 28, 27\] must have the same shape/);
  });

  it('the loss terms equal the Laplace / Gaussian NLL and Gaussian KL computed in float64 here', async () => {
    const N = 2, D = 6, Z = 3;
    const xs = values(N * D, 1), rs = values(N * D, 2), ms = values(N * Z, 3), lvs = values(N * Z, 4, -1, 1);
    const s = 0.3;
    const x = k.tensor(xs, { shape: [N, D] }), r = k.tensor(rs, { shape: [N, D] });
    const m = k.tensor(ms, { shape: [N, Z] }), lv = k.tensor(lvs, { shape: [N, Z] });
    const f32 = (v: number) => Math.fround(v);
    let kl = 0;
    for (let i = 0; i < N * Z; i++) kl += 0.5 * (f32(ms[i]!) ** 2 + Math.exp(f32(lvs[i]!)) - 1 - f32(lvs[i]!));
    kl /= N;
    for (const kind of ['l1', 'l2'] as const) {
      let nll = 0, err = 0;
      for (let i = 0; i < N * D; i++) {
        const e = f32(xs[i]!) - f32(rs[i]!);
        err += kind === 'l1' ? Math.abs(e) : e * e;
        nll += kind === 'l1' ? Math.abs(e) / Math.exp(s) + s + Math.LN2 : 0.5 * (e * e / Math.exp(s) + s + Math.log(2 * Math.PI));
      }
      nll /= N;
      const t = k.nn.vaeLoss(x, r, m, lv, k.tensor(s), { reconstruction: kind, klWeight: 0.25 });
      const got = await k.stack([t.nll, t.kl, t.elbo, t.loss, t.rec]).data();
      close(got, [nll, kl, -(nll + kl), nll + 0.25 * kl, err / (N * D)], 1e-5, 1e-5, kind);
    }
  });

  it('ELBO gradients equal float64 finite differences (noise and parameters), and WebGPU gradients match them', async () => {
    const x0 = values(16, 11, -1, 1), eps0 = values(4, 12, -1.5, 1.5);
    k.manualSeed(5);
    const vae = k.withDevice('cpu', () => new k.nn.VAE(TINY_VAE));
    // with respect to the reparameterization noise (the Gaussian likelihood this time)
    const r = await k.gradcheck((x, eps) => vae.loss(x, { noise: eps, reconstruction: 'l2' }).elbo, [
      { shape: [1, 1, 4, 4], data: x0, constant: true }, { shape: [1, 1, 2, 2], data: eps0 },
    ], { atol: 1e-6, rtol: 1e-5 });
    if (!r.ok) throw new Error(`worst ${r.worst} at ${JSON.stringify(r.at)}`);
    // with respect to parameters spread over the network (the L1 loss with its learned output log-variance)
    const objective = () => k.withDevice('cpu', () => vae.loss(k.tensor(x0, { shape: [1, 1, 4, 4] }), { noise: k.tensor(eps0, { shape: [1, 1, 2, 2] }), klWeight: 0.5 }).loss);
    await k.withDevice('cpu', () => k.scope(() => objective().backward()));
    const picks: [string, number][] = [['encoder.conv_in.weight', 7], ['encoder.down.0.block.0.norm1.weight', 1], ['encoder.down.1.block.0.conv2.weight', 30], ['quant_conv.bias', 1],
      ['decoder.mid.block_1.conv1.weight', 50], ['decoder.up.1.upsample.weight', 3], ['decoder.conv_out.bias', 0], ['logvar', 0]];
    const sd = vae.stateDict();
    const analytic: number[] = [], numeric: number[] = [];
    for (const [name, i] of picks) analytic.push((await sd[name]!.grad!.data())[i]!);
    for (const [name, i] of picks) numeric.push(await paramDerivative(sd[name]!, i, objective));
    close(analytic, numeric, 1e-6, 1e-5, 'dloss/dθ');
    // the same weights on the GPU (through safetensors) give the same gradients to f32 accuracy
    const gpu = new k.nn.VAE(TINY_VAE);
    gpu.loadStateDict(k.deserialize(await k.save(vae.stateDict())).tensors);
    k.scope(() => gpu.loss(k.tensor(x0, { shape: [1, 1, 4, 4] }), { noise: k.tensor(eps0, { shape: [1, 1, 2, 2] }), klWeight: 0.5 }).loss.backward());
    const gsd = gpu.stateDict();
    for (const [name] of picks) close(await gsd[name]!.grad!.data(), await sd[name]!.grad!.data(), 2e-4, 2e-3, name);
  }, 300_000);

  it('reparameterized samples have the posterior mean and variance, and pathwise gradients of E[z²] match the closed form', async () => {
    const mu = [-1, 0.5, 2, 0], lv = [0, -1, 1.2, -3];
    const N = 100_000, K = mu.length;
    k.manualSeed(7);
    const m = k.tensor(mu, { shape: [1, K], requiresGrad: true }), l = k.tensor(lv, { shape: [1, K], requiresGrad: true });
    const z = k.nn.reparameterize(m.expand([N, K]), l.expand([N, K]));
    const [mean, variance] = await Promise.all([z.mean(0).data(), z.var(0).data()]);
    z.square().mean(0).sum().backward();
    const [gm, gl] = [await m.grad!.data(), await l.grad!.data()];
    for (let j = 0; j < K; j++) {
      const s2 = Math.exp(lv[j]!), s = Math.sqrt(s2);
      expect(Math.abs(mean[j]! - mu[j]!)).toBeLessThan(5 * s / Math.sqrt(N));
      expect(Math.abs(variance[j]! - s2)).toBeLessThan(5 * s2 * Math.sqrt(2 / N));
      // d/dμ E[z²] = 2μ; d/dlogvar E[z²] = σ² (per-sample terms 2z and σε(μ + σε))
      expect(Math.abs(gm[0 * K + j]! - 2 * mu[j]!)).toBeLessThan(5 * 2 * s / Math.sqrt(N));
      expect(Math.abs(gl[j]! - s2)).toBeLessThan(5 * s * Math.sqrt(mu[j]! ** 2 + 2 * s2) / Math.sqrt(N));
    }
  });

  it('linear and slerp interpolation follow their closed forms', async () => {
    const a = k.tensor([[1, 0, 0, 0], [2, 0, 0, 0]]), b = k.tensor([[0, 1, 0, 0], [2, 0, 0, 0]]);
    const lin = await (await k.nn.interpolateLatents(a, b, 3, 'linear')).data();
    close(lin.slice(8, 12), [0.5, 0.5, 0, 0], 1e-7, 0, 'linear midpoint');
    const sl = await (await k.nn.interpolateLatents(a, b, 5, 'slerp')).data();
    // orthogonal unit vectors: the point at t is (cos(tπ/2), sin(tπ/2)); parallel ones fall back to linear
    for (let i = 0; i < 5; i++) close(sl.slice(i * 8, i * 8 + 2), [Math.cos((i / 4) * Math.PI / 2), Math.sin((i / 4) * Math.PI / 2)], 1e-6, 0, `slerp t=${i / 4}`);
    close(sl.slice(2 * 8 + 4, 2 * 8 + 8), [2, 0, 0, 0], 1e-6, 0, 'parallel');
    await expect(k.nn.interpolateLatents(a, b, 1)).rejects.toThrow(/interpolateLatents: steps must be an integer ≥ 2, got 1/);
  });
});

describe('GAN', () => {
  it('hinge and non-saturating losses equal their formulas', async () => {
    const real = [0.5, -2, 1.5, 3], fake = [-0.5, 2, -1.2, 0.1];
    const r = k.tensor(real), f = k.tensor(fake);
    const mean = (v: number[]) => v.reduce((p, q) => p + q, 0) / v.length;
    const sp = (v: number) => Math.log1p(Math.exp(v));
    const got = await k.stack([k.nn.discriminatorLoss(r, f, 'hinge'), k.nn.discriminatorLoss(r, f, 'non-saturating'), k.nn.generatorLoss(f), k.nn.generatorLoss(f, 'non-saturating')]).data();
    close(got, [
      0.5 * (mean(real.map((v) => Math.max(0, 1 - v))) + mean(fake.map((v) => Math.max(0, 1 + v)))),
      0.5 * (mean(real.map((v) => sp(-v))) + mean(fake.map((v) => sp(v)))),
      -mean(fake),
      mean(fake.map((v) => sp(-v))),
    ], 1e-6, 1e-6);
    expect(() => k.nn.discriminatorLoss(r, f, 'wasserstein' as k.nn.GanLoss)).toThrow(/discriminatorLoss: loss must be 'hinge' or 'non-saturating', got "wasserstein"/);
  });

  it('the PatchGAN discriminator maps 1×28×28 to a 5×5 logit map with 4×4 convolutions', () => {
    const d = new k.nn.PatchDiscriminator();
    expect(d.forward(k.zeros([3, 1, 28, 28])).shape).toEqual([3, 1, 5, 5]);
    const convs = Object.entries(d.stateDict()).filter(([n]) => n.endsWith('.weight') && d.stateDict()[n]!.rank === 4);
    expect(convs.map(([n, w]) => [n, w.shape.slice(2)])).toEqual([['main.0.weight', [4, 4]], ['main.2.weight', [4, 4]], ['main.5.weight', [4, 4]], ['main.8.weight', [4, 4]]]);
    expect(d.stateDict()['main.8.weight']!.shape[0]).toBe(1);
    expect(() => d.forward(k.zeros([3, 2, 28, 28]))).toThrow(/PatchDiscriminator: expected images \[N, 1, H, W\], got \[3, 2, 28, 28\]/);
  });

  it('R1 equals γ/2 · mean ‖∇x D‖² with ∇x from float64 finite differences, and its parameter gradient (double backward) matches finite differences', async () => {
    k.manualSeed(2);
    const D = k.withDevice('cpu', () => new k.nn.PatchDiscriminator({ channels: 1, width: 4, layers: 1, groups: 2 }));
    const shape = [2, 1, 6, 6], xs = values(72, 21, -1, 1), gamma = 3;
    const r1 = () => k.withDevice('cpu', () => k.nn.r1Penalty((x) => D.forward(x), k.tensor(xs, { shape }), gamma));
    const got = await k.scope(() => r1().item());
    // ∇x Σ D(x) by central differences, per example
    const sumD = (v: number[]) => k.withDevice('cpu', () => k.scope(() => k.noGrad(() => D.forward(k.tensor(v, { shape })).sum().item())));
    const sq = [0, 0];
    const h = 1e-6;
    for (let i = 0; i < xs.length; i++) {
      const up = xs.slice(), dn = xs.slice();
      up[i] += h;
      dn[i] -= h;
      const g = ((await sumD(up)) - (await sumD(dn))) / (2 * h);
      sq[Math.floor(i / 36)] += g * g;
    }
    const want = (gamma / 2) * ((sq[0]! + sq[1]!) / 2);
    expect(want).toBeGreaterThan(1e-3);
    close([got], [want], 1e-8, 1e-6, 'R1');
    // d R1 / dθ through the double backward, against differences of R1 itself
    await k.withDevice('cpu', () => k.scope(() => r1().backward()));
    const sd = D.stateDict();
    const picks: [string, number][] = [['main.0.weight', 5], ['main.2.weight', 17], ['main.3.weight', 1], ['main.5.weight', 9], ['main.5.bias', 0]];
    const analytic: number[] = [], numeric: number[] = [];
    // (the last bias shifts D(x) but not its input gradient: R1 does not depend on it, so it gets no gradient)
    expect(sd['main.5.bias']!.grad).toBeNull();
    for (const [name, i] of picks) analytic.push(sd[name]!.grad ? (await sd[name]!.grad!.data())[i]! : 0);
    for (const [name, i] of picks) numeric.push(await paramDerivative(sd[name]!, i, r1));
    close(analytic, numeric, 1e-6, 1e-5, 'dR1/dθ');
    // WebGPU gives the same value
    const gD = new k.nn.PatchDiscriminator({ channels: 1, width: 4, layers: 1, groups: 2 });
    gD.loadStateDict(k.deserialize(await k.save(D.stateDict())).tensors);
    close([await k.nn.r1Penalty((x) => gD.forward(x), k.tensor(xs, { shape }), gamma).item()], [want], 1e-6, 1e-4, 'R1 on WebGPU');
  });

  it('the adaptive weight equals ‖∇W rec‖ / (‖∇W gan‖ + 1e-4) computed by hand in float64, clamps at 1e4 and is detached', async () => {
    // recon = h·Wᵀ + b, rec = mean |x − recon|, gan = −mean_n Σ_o v_o·tanh(recon_no)
    const N = 3, F = 4, O = 2;
    const h = values(N * F, 31), W = values(O * F, 32), b = values(O, 33), x = values(N * O, 34), v = values(O, 35);
    const recon = (n: number, o: number) => b[o]! + Array.from({ length: F }, (_, f) => h[n * F + f]! * W[o * F + f]!).reduce((p, q) => p + q, 0);
    const gRec = new Float64Array(O * F), gGan = new Float64Array(O * F);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
      const r = recon(n, o);
      for (let f = 0; f < F; f++) {
        gRec[o * F + f] += (-Math.sign(x[n * O + o]! - r) * h[n * F + f]!) / (N * O);
        gGan[o * F + f] += (-v[o]! * (1 - Math.tanh(r) ** 2) * h[n * F + f]!) / N;
      }
    }
    const norm = (g: Float64Array) => Math.sqrt(g.reduce((p, q) => p + q * q, 0));
    const want = norm(gRec) / (norm(gGan) + 1e-4);
    const run = (device: k.Device, vs: number[], scale = 1, lossScale?: number) => k.withDevice(device, () => k.scope(async () => {
      const w = k.tensor(W, { shape: [O, F], requiresGrad: true });
      const r = k.tensor(h, { shape: [N, F] }).matmul(w.T).add(k.tensor(b));
      const rec = k.tensor(x, { shape: [N, O] }).sub(r).abs().mean().mul(scale);
      const gan = r.tanh().mul(k.tensor(vs)).sum(1).mean().neg();
      const a = k.nn.adaptiveWeight(rec, gan, w, lossScale ? { scale: k.tensor(lossScale) } : {});
      return { value: await a.item(), requiresGrad: a.requiresGrad };
    }));
    const cpu = await run('cpu', v), gpu = await run('webgpu', v);
    close([cpu.value], [want], 1e-12, 1e-9, 'float64');
    close([gpu.value], [want], 1e-6, 1e-5, 'webgpu');
    expect(gpu.requiresGrad).toBe(false);
    // mixed precision's loss scale: gradients of the scaled losses, norms divided by it (eps unscaled)
    close([(await run('cpu', v, 1, 2 ** 12)).value], [want], 1e-12, 1e-9, 'float64, loss scale');
    close([(await run('webgpu', v, 1, 2 ** 12)).value], [want], 1e-6, 1e-5, 'webgpu, loss scale');
    // a GAN term with no gradient at the last layer: the ratio is ‖∇rec‖·1e4·scale, clamped to 1e4
    expect((await run('cpu', [0, 0], 100)).value).toBe(1e4);
    expect(() => k.nn.adaptiveWeight(k.tensor([1, 2], { requiresGrad: true }), k.tensor(1, { requiresGrad: true }), k.tensor([1], { requiresGrad: true }))).toThrow(/adaptiveWeight: recLoss must be a scalar, got shape \[2\]/);
  });

  it('a seeded 2D GAN (MLPs, non-saturating loss, R1) covers at least 7 of the 8 Gaussians of a ring', async () => {
    const centers = Array.from({ length: 8 }, (_, i) => [2 * Math.cos((i * Math.PI) / 4), 2 * Math.sin((i * Math.PI) / 4)] as const);
    // a sample is high-quality when within 3σ = 0.3 of a centre; a mode is covered with ≥ 2% of all samples
    const coverage = (p: ArrayLike<number>) => {
      const counts = new Array(8).fill(0);
      let good = 0;
      for (let i = 0; i < p.length / 2; i++) {
        const d = centers.map(([cx, cy]) => Math.hypot(p[2 * i]! - cx, p[2 * i + 1]! - cy));
        const j = d.indexOf(Math.min(...d));
        if (d[j]! < 0.3) {
          counts[j]++;
          good++;
        }
      }
      const n = p.length / 2;
      return { modes: counts.filter((c) => c >= 0.02 * n).length, quality: good / n };
    };
    k.manualSeed(0);
    const G = new k.nn.MLPGenerator(4, 2, 64, 2), D = new k.nn.MLPDiscriminator(2, 64, 2);
    const trainer = new GANTrainer(G, D, 4, { loss: 'non-saturating', lr: 2e-3, r1Gamma: 0.1 });
    const before = coverage(await trainer.sample(2000).data());
    const B = 256, steps = 400;
    const data = k.data.toy2d('8gaussians', B * steps, 1);
    for (let s = 0; s < steps; s++) {
      const real = k.tensor(data.subarray(s * B * 2, (s + 1) * B * 2), { shape: [B, 2] });
      await trainer.trainStep(real);
      real.dispose();
    }
    const after = coverage(await trainer.sample(2000).data());
    // measured here: untrained 0 modes (quality 0.00); after 400 steps all 8 modes, 39% of samples within 3σ
    expect(before.modes).toBeLessThan(7);
    expect(after.modes).toBeGreaterThanOrEqual(7);
    expect(after.quality).toBeGreaterThan(0.3);
  }, 300_000);
});

describe('trainer checkpoints', () => {
  it('a GAN checkpoint resumes the run exactly; extra tensors may not use the prefixes of the trainer; a checkpoint of another kind is refused', async () => {
    const make = (seed: number) => {
      k.manualSeed(seed);
      return new GANTrainer(new k.nn.MLPGenerator(4, 2, 16, 1), new k.nn.MLPDiscriminator(2, 16, 1), 4, { r1Gamma: 0.1 });
    };
    const B = 64;
    const data = k.data.toy2d('8gaussians', B * 4, 2);
    const run = async (tr: GANTrainer, to: number) => {
      while (tr.step < to) {
        const real = k.tensor(data.subarray(tr.step * B * 2, (tr.step + 1) * B * 2), { shape: [B, 2] });
        await tr.trainStep(real);
        real.dispose();
      }
      await tr.flush();
    };
    const straight = make(5);
    await run(straight, 4);
    const first = make(5);
    await run(first, 2);
    const path = join(dir, 'gan.safetensors');
    await first.save(path);
    const resumed = make(6);
    await resumed.load(path);
    expect(resumed.step).toBe(2);
    await run(resumed, 4);
    expect(straight.history).toHaveLength(4);
    expect(resumed.history).toEqual(straight.history);
    await expect(first.save(path, {}, { 'generator.extra': k.zeros([1]) })).rejects.toThrow(/GANTrainer\.save: extra tensor 'generator\.extra' uses a prefix reserved for the trainer \(generator\., discriminator\., optim_g\., optim_d\.\)/);
    const vae = new VAETrainer(new k.nn.VAE({ widths: [8], patch: 4, groups: 4 }), { ...VAE_TRAIN_DEFAULTS, steps: 4 }, null);
    await expect(vae.load(path)).rejects.toThrow(/expected a checkpoint of format kiln-vae-checkpoint\/1, got format "kiln-gan-checkpoint\/1"/);
  });
});

describe('VAE trainer and latent diffusion through the CLI', () => {
  const vaeDir = join(dir, 'vae'), ldmDir = join(dir, 'ldm');
  const vaePath = join(vaeDir, 'vae.safetensors');

  it('the adversarial term and the discriminator switch on at discStart; a resumed run repeats the straight one exactly', async () => {
    k.manualSeed(1);
    const x = k.rand([4, 1, 28, 28]).mul(2).sub(1);
    const make = (seed: number) => {
      k.manualSeed(seed);
      const vae = new k.nn.VAE({ widths: [8], patch: 4, groups: 4 });
      return new VAETrainer(vae, { ...VAE_TRAIN_DEFAULTS, steps: 4, batchSize: 4, discStart: 2, r1Gamma: 1 }, { width: 4, layers: 1, groups: 2 });
    };
    const run = async (tr: VAETrainer, to: number) => {
      while (tr.step < to) await tr.trainStep(x);
      await tr.flush();
    };
    const tr = make(4);
    await run(tr, 4);
    const col = (name: (typeof VAE_METRICS)[number]) => tr.history.map((r) => r[VAE_METRICS.indexOf(name)]!);
    expect(col('weight').slice(0, 2)).toEqual([0, 0]);
    expect(col('disc').slice(0, 2)).toEqual([0, 0]);
    for (const w of col('weight').slice(2)) expect(w).toBeGreaterThan(0);
    for (const d of col('disc').slice(2)) expect(d).toBeGreaterThan(0);
    // the total is the weighted ELBO term plus weight × gan term
    for (const r of tr.history) expect(r[0]).toBeCloseTo(r[3]! + tr.config.klWeight * r[2]! + r[5]! * r[4]!, 2);
    // stop after 2 steps, save, restore into a differently initialized trainer (and generator state), continue
    const first = make(4);
    await run(first, 2);
    const path = join(dir, 'vae-resume.safetensors');
    await first.save(path);
    const resumed = make(99);
    await resumed.load(path);
    await run(resumed, 4);
    expect(resumed.history).toEqual(tr.history);
    expect(Array.from(await resumed.vae.lastLayer.data())).toEqual(Array.from(await tr.vae.lastLayer.data()));
    expect(Array.from(await resumed.discriminator!.stateDict()['main.5.weight']!.data())).toEqual(Array.from(await tr.discriminator!.stateDict()['main.5.weight']!.data()));
  }, 300_000);

  it('kiln train-vae, then kiln train --latent and kiln sample: a self-contained latent checkpoint decoding to 28×28 digits', async () => {
    await trainVaeCommand(['--steps', '3', '--batch', '4', '--widths', '8', '--patch', '4', '--disc-start', '1', '--disc-width', '4', '--disc-layers', '1', '--data-limit', '64', '--eval-limit', '8', '--out', vaeDir]);
    for (const f of ['vae.safetensors', 'loss.csv', 'recon.png', 'samples.png', 'interp.png']) expect(existsSync(join(vaeDir, f))).toBe(true);
    expect(isVAECheckpoint(vaePath)).toBe(true);
    expect(readFileSync(join(vaeDir, 'loss.csv'), 'utf8').trim().split('\n')).toHaveLength(4);
    // kiln eval of the VAE: its prior samples' Inception-style score (between 1 and the 10 classes) and the time of 100
    const evalJson = join(vaeDir, 'eval.json');
    await evalVaeCommand(['--checkpoint', vaePath, '--limit', '8', '--samples', '8', '--json', evalJson]);
    const ev = JSON.parse(readFileSync(evalJson, 'utf8'));
    expect(ev.inceptionScorePrior).toBeGreaterThanOrEqual(1);
    expect(ev.inceptionScorePrior).toBeLessThanOrEqual(10);
    expect(ev.sampleSeconds100).toBeGreaterThan(0);
    expect(ev.fidPrior).toBeGreaterThan(0);
    await trainCommand(['--latent', vaePath, '--steps', '2', '--batch', '4', '--data-limit', '64', '--sample-every', '0', '--sample-steps', '1', '--grid-per-class', '1', '--out', ldmDir]);
    const ckpt = join(ldmDir, 'checkpoint.safetensors');
    expect(isVAECheckpoint(ckpt)).toBe(false);
    const { model, meta, latent } = await k.diffusion.loadDenoiser(ckpt);
    expect(latent).not.toBeNull();
    expect((model.config as unknown as k.nn.UNetConfig).channels).toBe(4);
    expect((meta.latent as { source: string }).source).toBe(vaePath);
    // the stored normalization gives the encoded training latents zero mean and unit variance
    const { vae } = await k.nn.loadVAE(vaePath);
    expect((await k.diffusion.latentCodec(vae, k.data.batches(await k.data.loadMnist('train'), { batchSize: 250, limit: 64 }))).scale).toBe(latent!.scale);
    // … and, checked on held-out images (the first 256 of the test split, none of the 64 it was fitted
    // on), zero mean and unit variance up to sampling error: both the fit and the check average over
    // images, so the standard error of a per-image statistic with spread σ is σ·√(1/64 + 1/256); allow 4 of them
    const nHeld = 256;
    const { x } = k.data.batches(await k.data.loadMnist('test'), { batchSize: nHeld }).next().value!;
    k.manualSeed(9);
    const z = Array.from(await latent!.encode(x).data());
    const per = z.length / nHeld;
    const imgMean = Array.from({ length: nHeld }, (_, i) => z.slice(i * per, (i + 1) * per).reduce((p, q) => p + q, 0) / per);
    const m = imgMean.reduce((p, q) => p + q, 0) / nHeld;
    const imgSq = Array.from({ length: nHeld }, (_, i) => z.slice(i * per, (i + 1) * per).reduce((p, q) => p + (q - m) ** 2, 0) / per);
    const v = imgSq.reduce((p, q) => p + q, 0) / nHeld;
    const sd = (a: number[]) => { const mu = a.reduce((p, q) => p + q, 0) / a.length; return Math.sqrt(a.reduce((p, q) => p + (q - mu) ** 2, 0) / (a.length - 1)); };
    const se = Math.sqrt(1 / 64 + 1 / nHeld);
    expect(Math.abs(m)).toBeLessThan(4 * se * sd(imgMean));
    expect(Math.abs(v - 1)).toBeLessThan(4 * se * sd(imgSq));
    // the decoder in the checkpoint is the VAE's
    const zz = k.randn([2, ...vae.latentShape]);
    close(await latent!.vae.decode(zz).data(), await vae.decode(zz).data(), 1e-6, 1e-6, 'decoder');
    const out = join(ldmDir, 'grid.png');
    await sampleCommand(['--checkpoint', ckpt, '--per-class', '1', '--labels', '3,8', '--steps', '1', '--out', out]);
    const png = readFileSync(out);
    // one 28×28 tile per row (digits 3 and 8) with 2-pixel gaps: 32 wide, 62 high
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([32, 2 * 30 + 2]);
  }, 600_000);

  it('argument errors name the option and what it expects', async () => {
    await expect(trainVaeCommand(['--widths', '8,x'])).rejects.toThrow(/--widths expects comma-separated integers in \[1, 4096\], got '8,x'/);
    await expect(trainVaeCommand(['--reconstruction', 'l3'])).rejects.toThrow(/--reconstruction must be one of l1, l2, got 'l3'/);
    await expect(trainVaeCommand(['--kl-weight', '-1'])).rejects.toThrow(/--kl-weight expects a number ≥ 0, got '-1'/);
    await expect(trainVaeCommand(['--disc-loss', 'wgan'])).rejects.toThrow(/--disc-loss must be one of hinge, non-saturating, got 'wgan'/);
    await expect(trainVaeCommand(['--bogus', '1'])).rejects.toThrow(/unknown option --bogus \(see kiln train-vae --help\)/);
    await expect(trainCommand(['--latent', join(dir, 'missing.safetensors')])).rejects.toThrow(/--latent: VAE checkpoint .*missing\.safetensors does not exist \(train one with kiln train-vae/);
  });
});
