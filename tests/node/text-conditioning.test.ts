/**
 * Text conditioning: the captioned-MNIST builder (deterministic, held-out split disjoint from training), the
 * attribute transforms measured on real digits, the word tokenizer, cross-attention against a float64
 * reference written here (and its gradients by finite differences), padding that cannot change an output,
 * caption dropout giving exactly the unconditional output of text-conditioned UNet and DiT, and the residual
 * blocks whose conditioning scales and shifts their normalization (`scaleShift`, which text UNets use).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '../../src/index.ts';
import { close, f32, values } from '../shared/util.ts';

const D = k.data;

beforeAll(async () => {
  await k.init();
});

/** Sets every parameter of a model to seeded values in ±scale (zero-initialized layers included, so every path counts). */
function randomize(model: k.nn.Module, seed: number, scale = 0.4): void {
  [...model.parameters()].forEach((p, i) => k.noGrad(() => p.assign(k.tensor(f32(values(p.size, seed + i, -scale, scale)), { shape: p.shape }))));
}

/** The tokenizer over every training caption. */
const tokenizer = () => D.WordTokenizer.fromCaptions(D.trainCaptions().map(D.captionText));

describe('captioned MNIST', () => {
  it('is deterministic for a seed; captions name the digit of their image', async () => {
    const mnist = await D.loadMnist('train');
    const [a, b, c] = [new D.CaptionBatches(mnist, 32, 5).at(3), new D.CaptionBatches(mnist, 32, 5).at(3), new D.CaptionBatches(mnist, 32, 6).at(3)];
    expect(a.captions).toEqual(b.captions);
    expect(Array.from(a.index)).toEqual(Array.from(b.index));
    expect(Array.from(await a.x.data())).toEqual(Array.from(await b.x.data()));
    expect(c.captions).not.toEqual(a.captions);
    a.specs.forEach((s, i) => {
      expect(s.digit).toBe(mnist.labels[a.index[i]!]);
      expect(a.captions[i]).toBe(D.captionText(s));
    });
    // the same example gets another caption in another epoch, the same one in the same epoch
    const draws = Array.from({ length: 8 }, (_, e) => D.captionText(D.drawCaption(7, 5, 123, e)));
    expect(new Set(draws).size).toBeGreaterThan(1);
    expect(D.captionText(D.drawCaption(7, 5, 123, 2))).toBe(draws[2]);
    expect(() => D.captionText({ digit: 10, size: null, stroke: null, phrasing: 0 })).toThrow(/captionText: digit must be an integer 0…9, got 10/);
  });

  it('holds out phrasings and attribute combinations: disjoint from training, never drawn for training, no unknown words', () => {
    const train = D.trainCaptions().map(D.captionText), held = D.evalCaptions().map(D.captionText);
    const trainSet = new Set(train);
    expect(trainSet.size).toBe(train.length);
    expect(held.filter((h) => trainSet.has(h))).toEqual([]);
    expect(train.length + held.length).toBe(D.allCaptions().length);
    // both kinds are held out: whole phrasings, and per digit one combination in every phrasing
    const heldSpecs = D.evalCaptions();
    expect(heldSpecs.some((s) => !D.PHRASINGS[s.phrasing]!.heldOut)).toBe(true);
    expect(D.PHRASINGS.filter((p) => p.heldOut).length).toBeGreaterThanOrEqual(2);
    const seenPhrasings = new Set<number>(), seenEval = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const s = D.drawCaption(i % 10, 11, i, Math.floor(i / 1000));
      expect(D.isHeldOut(s), D.captionText(s)).toBe(false);
      expect(held.includes(D.captionText(s))).toBe(false);
      seenPhrasings.add(s.phrasing);
      const e = D.drawCaption(i % 10, 11, i, 0, 'eval');
      expect(D.isHeldOut(e)).toBe(true);
      seenEval.add(D.captionText(e));
    }
    expect([...seenPhrasings].sort()).toEqual(D.PHRASINGS.flatMap((p, i) => (p.heldOut ? [] : [i])));
    expect(seenEval.size).toBeGreaterThan(200);
    // held-out phrasings rearrange training words: a tokenizer built from training captions knows all of them
    const tok = tokenizer();
    for (const h of held) expect(Array.from(tok.encodeIds([h])), h).not.toContain(D.WordTokenizer.UNK);
  });

  it('the transforms move the measurements the right way on real MNIST digits', async () => {
    const mnist = await D.loadMnist('test');
    const n = 120, side = 28;
    let smaller = 0, larger = 0, thinner = 0, bolder = 0;
    const right = { size: 0, stroke: 0, total: 0 };
    for (let i = 0; i < n; i++) {
      const img = Float32Array.from(mnist.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255);
      const box = D.boundingBox(img, side).size, w = D.strokeWidth(img, side);
      expect(box).toBe(20); // MNIST's normalization
      if (D.boundingBox(D.rescaleDigit(img, side, D.SIZE_FACTORS.small), side).size < box) smaller++;
      if (D.boundingBox(D.rescaleDigit(img, side, D.SIZE_FACTORS.large), side).size > box) larger++;
      const thin = D.strokeWidth(D.thinStroke(img, side), side), bold = D.strokeWidth(D.boldStroke(img, side), side);
      expect(thin).toBeLessThanOrEqual(w);
      expect(bold).toBeGreaterThanOrEqual(w);
      if (thin < w) thinner++;
      if (bold > w) bolder++;
      // every combination is recognized by the binary decisions of the evaluation
      for (const size of ['small', 'large'] as const) {
        for (const stroke of ['thin', 'bold'] as const) {
          const m = D.measureDigit(D.renderAttributes(img, side, { size, stroke }), side);
          right.size += +(m.sizeClass === size);
          right.stroke += +(m.strokeClass === stroke);
          right.total++;
        }
      }
    }
    expect([smaller, larger]).toEqual([n, n]);
    // a digit already drawn with a pen at the target is left as it is
    expect(thinner).toBeGreaterThan(0.8 * n);
    expect(bolder).toBeGreaterThan(0.8 * n);
    expect(right.size / right.total).toBeGreaterThanOrEqual(0.98);
    expect(right.stroke / right.total).toBeGreaterThanOrEqual(0.95);
    // the evaluation's score of a captioned batch: its own images pass, the same images under swapped captions fail
    const batch = new D.CaptionBatches(mnist, 64, 2, 'eval').at(0);
    const px = await batch.x.data();
    const own = D.attributeScore(px, side, batch.specs);
    const swap = D.attributeScore(px, side, batch.specs.map((s) => ({ size: s.size && (s.size === 'small' ? 'large' : 'small'), stroke: s.stroke && (s.stroke === 'thin' ? 'bold' : 'thin') })));
    expect(own.size.total).toBeGreaterThan(20);
    expect(own.stroke.total).toBeGreaterThan(20);
    expect(own.size.correct / own.size.total).toBeGreaterThanOrEqual(0.95);
    expect(own.stroke.correct / own.stroke.total).toBeGreaterThanOrEqual(0.9);
    expect(swap.size.correct / swap.size.total).toBeLessThanOrEqual(0.05);
    expect(swap.stroke.correct / swap.stroke.total).toBeLessThanOrEqual(0.1);
  });

  it('erosion and dilation are −maxpool(−x) and maxpool(x) (3×3, stride 1) on a real digit', async () => {
    const mnist = await D.loadMnist('test');
    const img = Float32Array.from(mnist.images.subarray(784 * 3, 784 * 4), (v) => v / 255);
    const x = k.tensor(img, { shape: [1, 1, 28, 28] });
    const pool = (t: k.Tensor) => k.F.maxPool2d(t, 3, { stride: 1, padding: 1 });
    expect(Array.from(D.dilate(img, 28, 'square'))).toEqual(Array.from(await pool(x).data()));
    expect(Array.from(D.erode(img, 28, 'square'))).toEqual(Array.from(await pool(x.neg()).neg().data()));
    expect(() => D.erode(img.subarray(0, 700), 28)).toThrow(/erode: expected a 28×28 image \(784 values\), got 700 values/);
  });
});

describe('word tokenizer', () => {
  it('pads to a fixed length after <bos>; the empty caption is [<bos>, <pad>, …]; unknown words are <unk>', async () => {
    const tok = tokenizer();
    const L = tok.length;
    expect(L).toBe(8); // "the digit seven, small and bold": 6 words and the comma, plus <bos>
    expect(Array.from(tok.unconditionalIds())).toEqual(Array.from(k.nn.unconditionalTokens(L)));
    expect(Array.from(tok.unconditionalIds())).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    const ids = tok.encode(['A small bold seven', '', 'the digit 7, large and thin', 'purple seven']);
    expect(ids.shape).toEqual([4, L]);
    const a = await ids.data();
    expect(tok.decode(a.subarray(0, L))).toBe('a small bold seven');
    expect(tok.decode(a.subarray(2 * L, 3 * L))).toBe('the digit 7, large and thin');
    expect(a[3 * L + 1]).toBe(D.WordTokenizer.UNK);
    expect(D.WordTokenizer.fromSpec(JSON.parse(JSON.stringify(tok.toSpec()))).encodeIds(['seven'])).toEqual(tok.encodeIds(['seven']));
    expect(() => tok.encode(['a a a a a a a a'])).toThrow(/WordTokenizer.encode: caption "a a a a a a a a" has 8 words, more than the 7 that fit in length 8 after <bos>/);
  });
});

/** Cross-attention of x [N, C, T] (channels first) to ctx [N, L, Dc] with keys masked, in float64 (PyTorch's MultiheadAttention definition). */
function crossAttentionRef(x: number[], ctx: number[], mask: number[], P: Record<string, number[]>, N: number, C: number, T: number, L: number, Dc: number, H: number): number[] {
  const hd = C / H, out = new Array<number>(N * C * T).fill(0);
  const proj = (W: number[], b: number[], bOff: number, rows: (r: number, c: number) => number, R: number, K: number) =>
    Array.from({ length: R * C }, (_, i) => {
      const r = Math.floor(i / C), e = i % C;
      let acc = b[bOff + e]!;
      for (let c = 0; c < K; c++) acc += rows(r, c) * W[e * K + c]!;
      return acc;
    });
  for (let n = 0; n < N; n++) {
    const Q = proj(P.wq!, P.b!, 0, (t, c) => x[(n * C + c) * T + t]!, T, C);
    const K = proj(P.wk!, P.b!, C, (j, d) => ctx[(n * L + j) * Dc + d]!, L, Dc);
    const V = proj(P.wv!, P.b!, 2 * C, (j, d) => ctx[(n * L + j) * Dc + d]!, L, Dc);
    const O = new Array<number>(T * C).fill(0);
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const s = Array.from({ length: L }, (_, j) => {
          if (!mask[n * L + j]) return -Infinity;
          let acc = 0;
          for (let e = h * hd; e < (h + 1) * hd; e++) acc += Q[t * C + e]! * K[j * C + e]!;
          return acc / Math.sqrt(hd);
        });
        const m = Math.max(...s), ex = s.map((v) => Math.exp(v - m)), z = ex.reduce((a, b) => a + b, 0);
        for (let e = h * hd; e < (h + 1) * hd; e++) O[t * C + e] = ex.reduce((a, p, j) => a + (p / z) * V[j * C + e]!, 0);
      }
    }
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < C; o++) {
        let acc = P.bo![o]!;
        for (let e = 0; e < C; e++) acc += O[t * C + e]! * P.wo![o * C + e]!;
        out[(n * C + o) * T + t] = acc;
      }
    }
  }
  return out;
}

describe('cross-attention', () => {
  const [N, C, Hh, W, L, Dc, H] = [2, 4, 2, 3, 5, 6, 2];
  const mask = [1, 1, 1, 0, 0, 1, 1, 1, 1, 0];
  const setParams = (ca: k.nn.CrossAttention, seed: number) => {
    const a = ca.attn;
    const named: [string, k.nn.Parameter][] = [['wq', a.q_proj_weight!], ['wk', a.k_proj_weight!], ['wv', a.v_proj_weight!], ['b', a.in_proj_bias], ['wo', a.out_proj.weight], ['bo', a.out_proj.bias!]];
    const P: Record<string, number[]> = {};
    named.forEach(([n, p], i) => {
      P[n] = f32(values(p.size, seed + i, -0.8, 0.8));
      k.noGrad(() => p.assign(k.tensor(P[n]!, { shape: p.shape })));
    });
    return P;
  };

  it('equals the float64 reference; masked context tokens change nothing', async () => {
    const ca = new k.nn.CrossAttention(C, Dc, H);
    expect([...ca.namedParameters()].map(([n]) => n)).toEqual(['attn.q_proj_weight', 'attn.k_proj_weight', 'attn.v_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias']);
    const P = setParams(ca, 300);
    const x = f32(values(N * C * Hh * W, 310, -2, 2)), ctx = f32(values(N * L * Dc, 311, -2, 2));
    const m = k.tensor(Uint8Array.from(mask), { shape: [N, L], dtype: 'bool' });
    const out = ca.forward(k.tensor(x, { shape: [N, C, Hh, W] }), k.tensor(ctx, { shape: [N, L, Dc] }), m);
    expect(out.shape).toEqual([N, C, Hh, W]);
    const got = await out.data();
    close(got, crossAttentionRef(x, ctx, mask, P, N, C, Hh * W, L, Dc, H), 2e-5, 2e-5, 'cross-attention');
    // padded tokens: anything there, even huge values, leaves the output bit for bit unchanged
    const junk = ctx.map((v, i) => (mask[Math.floor(i / Dc)] ? v : 1e4 * Math.sin(i)));
    expect(Array.from(await ca.forward(k.tensor(x, { shape: [N, C, Hh, W] }), k.tensor(junk, { shape: [N, L, Dc] }), m).data())).toEqual(Array.from(got));
    // …and without the mask they do count (the check above can fail)
    const unmasked = await ca.forward(k.tensor(x, { shape: [N, C, Hh, W] }), k.tensor(junk, { shape: [N, L, Dc] })).data();
    expect(Math.max(...Array.from(unmasked, (v, i) => Math.abs(v - got[i]!)))).toBeGreaterThan(1e-2);
    expect(() => ca.forward(k.tensor(x, { shape: [N, C, Hh, W] }), k.zeros([N, L, Dc + 1]), m)).toThrow(/CrossAttention: expected context of shape \[2, L, 6\], got \[2, 5, 7\]/);
    expect(() => ca.forward(k.tensor(x, { shape: [N, C, Hh, W] }), k.tensor(ctx, { shape: [N, L, Dc] }), k.ones([N, L]))).toThrow(/MultiheadAttention: expected keyMask of shape \[2, 5\] and dtype bool, got \[2, 5\] f32/);
  });

  it('gradients of input, context and every parameter by finite differences (float64 reference)', async () => {
    const [n, c, t, l, dc] = [2, 4, 3, 4, 3];
    const ca = k.withDevice('cpu', () => new k.nn.CrossAttention(c, dc, 2));
    const a = ca.attn;
    const params = [a.q_proj_weight!, a.k_proj_weight!, a.v_proj_weight!, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias!];
    const fn = (x: k.Tensor, ctx: k.Tensor, wq: k.Tensor, wk: k.Tensor, wv: k.Tensor, b: k.Tensor, wo: k.Tensor, bo: k.Tensor, m: k.Tensor) => {
      // the module reads its parameters at each forward: give it the checked tensors
      Object.assign(a, { q_proj_weight: wq, k_proj_weight: wk, v_proj_weight: wv, in_proj_bias: b });
      Object.assign(a.out_proj, { weight: wo, bias: bo });
      return ca.forward(x, ctx, m.ne(0));
    };
    const r = await k.gradcheck(fn as (...xs: k.Tensor[]) => k.Tensor, [
      { shape: [n, c, 1, t], data: values(n * c * t, 320) },
      { shape: [n, l, dc], data: values(n * l * dc, 321) },
      ...params.map((p, i) => ({ shape: p.shape as number[], data: values(p.size, 322 + i, -0.8, 0.8) })),
      { shape: [n, l], data: [1, 1, 0, 0, 1, 1, 1, 0], constant: true, dtype: 'i32' as const },
    ]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
    // the gradient of a padded context token is exactly zero
    const gctx = r.analytic[1]!;
    for (const j of [2, 3, 7]) for (let d = 0; d < dc; d++) expect(gctx[Math.floor(j / l) * l * dc + (j % l) * dc + d]).toBe(0);
  }, 30_000);
});

/** A small text-conditioned UNet or DiT over the captions' vocabulary, every parameter random. */
function textModel(kind: 'unet' | 'dit', tok: k.data.WordTokenizer, seed: number): k.nn.UNet | k.nn.DiT {
  const encoder = { vocabSize: tok.vocabSize, length: tok.length, dim: 12, depth: 1, heads: 2, mlpRatio: 2 };
  const m = kind === 'unet'
    ? new k.nn.UNet({ channels: 1, size: 8, widths: [8, 16], depth: 1, attention: [], midAttention: false, heads: 2, numClasses: 0, patch: 1, groups: 4, text: { encoder, levels: [1], mid: true } })
    : new k.nn.DiT({ channels: 1, size: 8, patch: 2, dim: 16, depth: 2, heads: 2, mlpRatio: 2, numClasses: 0, text: { encoder } });
  randomize(m, seed);
  return m.eval();
}

describe('text-conditioned denoisers', () => {
  const captions = ['a small bold seven', '', 'the number 3', ''];
  for (const kind of ['unet', 'dit'] as const) {
    it(`${kind}: a caption-dropped row gives exactly the unconditional output; padding never matters`, async () => {
      const tok = tokenizer();
      const model = textModel(kind, tok, 400);
      const N = captions.length;
      const x = k.tensor(f32(values(N * 64, 410, -1, 1)), { shape: [N, 1, 8, 8] });
      const t = k.tensor([0.3, 0.3, 0.7, 0.7]);
      const ids = tok.encode(captions);
      const uncond = tok.encode(captions.map(() => ''));
      const [out, ref] = await Promise.all([model.forward(x, t, ids).data(), model.forward(x, t, uncond).data()]);
      const row = (a: ArrayLike<number>, i: number) => Array.from(a).slice(i * 64, (i + 1) * 64);
      for (const i of [1, 3]) expect(row(out, i)).toEqual(row(ref, i));
      for (const i of [0, 2]) expect(Math.max(...row(out, i).map((v, j) => Math.abs(v - row(ref, i)[j]!)))).toBeGreaterThan(1e-3);
      // caption dropout replaces whole rows by the empty caption
      expect(Array.from(await k.diffusion.dropCaptions(ids, 1).data())).toEqual(Array.from(await uncond.data()));
      expect(Array.from(await k.diffusion.dropCaptions(ids, 0).data())).toEqual(Array.from(await ids.data()));
      // the text encoder's positions past the longest caption only ever meet padding: changing them changes nothing
      const pos = model.text_encoder!.pos_embed;
      const maxLen = Math.max(...captions.map((c) => 1 + k.data.splitWords(c).length));
      const saved = await pos.data();
      const perturb = (from: number) => k.noGrad(() => pos.assign(k.tensor(Float32Array.from(saved, (v, i) => (Math.floor(i / 12) >= from ? v + 5 * Math.cos(i) : v)), { shape: pos.shape })));
      perturb(maxLen);
      expect(Array.from(await model.forward(x, t, ids).data())).toEqual(Array.from(out));
      // …while a position a caption uses does change the output
      perturb(maxLen - 1);
      expect(Array.from(await model.forward(x, t, ids).data())).not.toEqual(Array.from(out));
      k.noGrad(() => pos.assign(k.tensor(saved, { shape: pos.shape })));
      expect(() => model.forward(x, t, k.tensor(new Int32Array(N), { dtype: 'i32' }))).toThrow(new RegExp(`${kind === 'unet' ? 'UNet' : 'DiT'}: this model is text-conditioned; pass token ids of shape \\[4, 8\\] and dtype i32`));
    });
  }

  it('the loss trains the text encoder jointly; models without text keep their config and parameters', async () => {
    const tok = tokenizer();
    const model = textModel('dit', tok, 500).train();
    const { process, prediction } = k.diffusion.objectiveSetup('flow');
    const x0 = k.tensor(f32(values(4 * 64, 510, -1, 1)), { shape: [4, 1, 8, 8] });
    k.manualSeed(3);
    const loss = k.diffusion.denoisingLoss(model, x0, tok.encode(captions), { process, prediction, labelDropout: 0.5 });
    loss.backward();
    const g = await model.text_encoder!.token_embed.weight.grad!.abs().sum().item();
    expect(g).toBeGreaterThan(0);
    model.zeroGrad();
    for (const m of [new k.nn.UNet(), new k.nn.DiT()]) {
      expect('text' in m.config).toBe(false);
      expect(Object.keys(m.stateDict()).filter((n) => /text|xattn|cross/.test(n))).toEqual([]);
    }
    expect(() => new k.nn.UNet({ numClasses: 10, text: { encoder: { vocabSize: 9, length: 4, dim: 8, depth: 1, heads: 2, mlpRatio: 2 }, levels: [1] } })).toThrow(/UNet: a text-conditioned model takes token ids, not classes; set numClasses to 0 \(got 10\)/);
  });

  it("pooled 'words' adds the sum of the caption's token vectors to the time embedding (float64), whatever the word order", async () => {
    const tok = tokenizer();
    const encoder = { vocabSize: tok.vocabSize, length: tok.length, dim: 12, depth: 1, heads: 2, mlpRatio: 2 };
    const model = new k.nn.DiT({ channels: 1, size: 8, patch: 2, dim: 16, depth: 1, heads: 2, mlpRatio: 2, numClasses: 0, text: { encoder, pooled: 'words' } });
    expect(model.text_pool).toBeInstanceOf(k.nn.Embedding);
    expect(model.text_pool!.weight.shape).toEqual([tok.vocabSize, 16]);
    randomize(model, 600);
    const prompts = ['a small bold seven', 'seven bold small a', 'the number 3'];
    const ids = tok.encode(prompts);
    const { pooled } = k.nn.encodeText('DiT', model.text_encoder!, model.text_pool, ids);
    const [E, got, idv] = await Promise.all([model.text_pool!.weight.data(), pooled!.data(), ids.data()]);
    const want: number[] = [];
    prompts.forEach((_, n) => {
      const row = Array.from(idv.subarray(n * tok.length, (n + 1) * tok.length)).filter((id) => id !== k.nn.TEXT_PAD_ID);
      for (let o = 0; o < 16; o++) want.push(row.reduce((s, id) => s + E[id * 16 + o]!, 0));
    });
    close(got, want, 1e-5, 1e-5);
    close(got.subarray(16, 32), got.subarray(0, 16), 1e-6, 1e-6); // a bag of words: the order does not matter
    // the pooled words reach the output; an unknown setting is an error naming the model
    const x = k.tensor(f32(values(3 * 64, 610, -1, 1)), { shape: [3, 1, 8, 8] }), t = k.tensor([0.4, 0.4, 0.4]);
    const before = await model.forward(x, t, ids).data();
    k.noGrad(() => model.text_pool!.weight.assign(model.text_pool!.weight.mul(2)));
    expect(Math.max(...Array.from(await model.forward(x, t, ids).data(), (v, i) => Math.abs(v - before[i]!)))).toBeGreaterThan(1e-3);
    expect(() => new k.nn.DiT({ numClasses: 0, text: { encoder, pooled: 'mean' as never } })).toThrow(/DiT: text.pooled must be true, false or 'words', got "mean"/);
  });

  it("with wordScale, pooled 'words' starts at zero for every caption and is wordScale times the sum (float64)", async () => {
    const tok = tokenizer();
    const encoder = { vocabSize: tok.vocabSize, length: tok.length, dim: 12, depth: 1, heads: 2, mlpRatio: 2 };
    const config = { channels: 1, size: 8, patch: 2, dim: 16, depth: 1, heads: 2, mlpRatio: 2, numClasses: 0 };
    const ids = tok.encode(['a small bold seven', 'the number 3', '']);
    const pooledOf = (m: k.nn.DiT) => k.nn.encodeText('DiT', m.text_encoder!, m.text_pool, ids).pooled!.data();
    // a new model's words say nothing yet: every caption, the empty one included, pools to exactly zero…
    const scaled = new k.nn.DiT({ ...config, text: { encoder, pooled: 'words', wordScale: 3 } });
    expect(Array.from(await pooledOf(scaled)).every((v) => v === 0)).toBe(true);
    // …where N(0, 1) vectors (no wordScale, as checkpoints saved before it) give each caption a random offset
    const unscaled = new k.nn.DiT({ ...config, text: { encoder, pooled: 'words' } });
    const offsets = Array.from(await pooledOf(unscaled));
    expect(Math.sqrt(offsets.reduce((a, v) => a + v * v, 0) / offsets.length)).toBeGreaterThan(0.5);
    // trained (here: randomized) vectors are summed and scaled
    randomize(scaled, 620);
    const [E, got, idv] = await Promise.all([scaled.text_pool!.weight.data(), pooledOf(scaled), ids.data()]);
    const want: number[] = [];
    for (let n = 0; n < 3; n++) {
      const row = Array.from(idv.subarray(n * tok.length, (n + 1) * tok.length)).filter((id) => id !== k.nn.TEXT_PAD_ID);
      for (let o = 0; o < 16; o++) want.push(3 * row.reduce((s, id) => s + E[id * 16 + o]!, 0));
    }
    close(got, want, 1e-5, 1e-5);
    // the backbone applies it: a UNet with wordScale 3 computes what one without computes from 3× its word vectors
    const unetConfig = { channels: 1, size: 8, widths: [8, 16], depth: 1, attention: [], midAttention: false, heads: 2, numClasses: 0, patch: 1, groups: 4 };
    const unetText = { encoder, pooled: 'words' as const, levels: [1], mid: true };
    const withScale = new k.nn.UNet({ ...unetConfig, text: { ...unetText, wordScale: 3 } });
    randomize(withScale, 630);
    const plain = new k.nn.UNet({ ...unetConfig, text: unetText });
    const sd = withScale.stateDict();
    expect(plain.loadStateDict({ ...sd, 'text_pool.weight': sd['text_pool.weight']!.mul(3) })).toEqual({ missing: [], unexpected: [] });
    const x = k.tensor(f32(values(3 * 64, 640, -1, 1)), { shape: [3, 1, 8, 8] }), t = k.tensor([0.2, 0.5, 0.8]);
    const [scaledOut, plainOut, wordsOnly] = await Promise.all([withScale.forward(x, t, ids).data(), plain.forward(x, t, ids).data(), k.nn.encodeText('UNet', withScale.text_encoder!, withScale.text_pool, ids).pooled!.abs().max().item()]);
    expect(wordsOnly).toBeGreaterThan(0.1);
    close(scaledOut, plainOut, 1e-5, 1e-4);
    expect(() => new k.nn.DiT({ ...config, text: { encoder, wordScale: 3 } })).toThrow(/DiT: text.wordScale must be a positive number and needs pooled 'words', got wordScale 3 with pooled true/);
    expect(() => new k.nn.UNet({ numClasses: 0, text: { encoder, pooled: 'words', wordScale: 0, levels: [] } })).toThrow(/UNet: text.wordScale must be a positive number and needs pooled 'words', got wordScale 0 with pooled "words"/);
  });
});

describe("residual blocks with scaleShift (ADM's scale-shift norm)", () => {
  const [N, Ci, Co, E, Hh, W] = [2, 4, 6, 5, 3, 3];
  const set = (p: k.Tensor, v: number[]) => k.noGrad(() => p.assign(k.tensor(f32(v), { shape: p.shape })));

  it('scales and shifts the second GroupNorm by the conditioning: equal to an additive block with the same scale and shift folded into its norm', async () => {
    const a = new k.nn.ResBlock(Ci, Co, E, 2, true), b = new k.nn.ResBlock(Ci, Co, E, 2);
    expect(a.emb.weight.shape).toEqual([2 * Co, E]);
    expect(() => new k.nn.UNet({ widths: [8], scaleShift: 1 as unknown as boolean })).toThrow(/UNet: scaleShift must be true or false, got 1/);
    randomize(a, 400);
    // a's conditioning: a constant scale s and shift c per channel (its weight zero), applied after norm2 (weight w, bias β)
    const s = values(Co, 420, -0.9, 0.9), c = values(Co, 421), w = values(Co, 422, 0.5, 1.5), beta = values(Co, 423);
    set(a.emb.weight, new Array<number>(2 * Co * E).fill(0));
    set(a.emb.bias!, [...s, ...c]);
    set(a.norm2.weight!, w);
    set(a.norm2.bias!, beta);
    // b adds nothing before norm2, whose affine is (x̂·w + β)·(1 + s) + c
    const sd = a.stateDict();
    b.loadStateDict({ ...sd, 'emb.weight': k.zeros([Co, E]), 'emb.bias': k.zeros([Co]), 'norm2.weight': k.tensor(f32(w.map((v, i) => v * (1 + s[i]!)))), 'norm2.bias': k.tensor(f32(beta.map((v, i) => v * (1 + s[i]!) + c[i]!))) }, { strict: true });
    const x = k.tensor(f32(values(N * Ci * Hh * W, 430, -2, 2)), { shape: [N, Ci, Hh, W] }), e = k.tensor(f32(values(N * E, 431)), { shape: [N, E] });
    const [ya, yb] = [await a.forward(x, e).data(), await b.forward(x, e).data()];
    close(ya, yb, 1e-5, 1e-5, 'scale-shift block against the folded additive one');
    // the scale counts (so the check above can fail): without it the output moves
    set(a.emb.bias!, [...new Array<number>(Co).fill(0), ...c]);
    const unscaled = await a.forward(x, e).data();
    expect(Math.max(...Array.from(unscaled, (v, i) => Math.abs(v - ya[i]!)))).toBeGreaterThan(1e-2);
  });

  it('gradients of input, conditioning and the projection by finite differences (float64)', async () => {
    const blk = k.withDevice('cpu', () => new k.nn.ResBlock(Ci, Co, E, 2, true));
    k.withDevice('cpu', () => randomize(blk, 440));
    const fn = (x: k.Tensor, e: k.Tensor, we: k.Tensor, be: k.Tensor) => {
      Object.assign(blk.emb, { weight: we, bias: be });
      return blk.forward(x, e);
    };
    const r = await k.gradcheck(fn as (...xs: k.Tensor[]) => k.Tensor, [
      { shape: [N, Ci, Hh, W], data: values(N * Ci * Hh * W, 450, -2, 2) },
      { shape: [N, E], data: values(N * E, 451) },
      { shape: [2 * Co, E], data: values(2 * Co * E, 452, -0.6, 0.6) },
      { shape: [2 * Co], data: values(2 * Co, 453, -0.6, 0.6) },
    ]);
    expect(r.ok, JSON.stringify(r.at)).toBe(true);
    // every input gets a gradient that is not zero, and so do both halves (scale, shift) of the projection
    const big = (g: ArrayLike<number>) => Math.max(...Array.from(g, Math.abs));
    for (const g of r.analytic) expect(big(g)).toBeGreaterThan(1e-3);
    for (const [g, half] of [[r.analytic[2]!, Co * E], [r.analytic[3]!, Co]] as const) {
      expect(big(g.subarray(0, half)), 'scale half').toBeGreaterThan(1e-3);
      expect(big(g.subarray(half)), 'shift half').toBeGreaterThan(1e-3);
    }
  }, 60_000);
});

describe('training and sampling from captions (smoke)', () => {
  it('DiffusionTrainer takes token ids with caption dropout; a checkpoint samples from prompts with guidance', async () => {
    const tok = tokenizer();
    const mnist = await D.loadMnist('train');
    const data = new D.CaptionBatches(mnist, 8, 1);
    const encoder = { vocabSize: tok.vocabSize, length: tok.length, dim: 16, depth: 1, heads: 2, mlpRatio: 2 };
    k.manualSeed(0);
    const model = new k.nn.DiT({ channels: 1, size: 28, patch: 7, dim: 16, depth: 1, heads: 2, mlpRatio: 2, numClasses: 0, text: { encoder } });
    const trainer = new k.train.DiffusionTrainer(model, { ...k.train.TRAIN_DEFAULTS, steps: 4, batchSize: 8, warmup: 1, labelDropout: 0.3 });
    for (let s = 0; s < 4; s++) {
      const b = data.at(s);
      await trainer.trainStep(b.x, tok.encode(b.captions));
    }
    await trainer.flush();
    expect(trainer.losses.length).toBe(4);
    expect(trainer.losses.every(Number.isFinite)).toBe(true);
    const bytes = await trainer.save(undefined, { model: { kind: 'dit', config: model.config }, tokenizer: tok.toSpec() });
    const { model: loaded, meta } = await k.diffusion.loadDenoiser(bytes);
    const t2 = D.WordTokenizer.fromSpec(meta.tokenizer as k.data.TokenizerSpec);
    const prompts = ['a small bold three', 'the digit 7, large and thin'];
    let evaluations = 0;
    const x = await k.diffusion.generateImages(loaded, null, { objective: 'flow', tokens: t2.encodeIds(prompts), steps: 2, guidance: 2, seed: 3, onEvaluate: ({ batch }) => (evaluations += batch) });
    expect(x.shape).toEqual([2, 1, 28, 28]);
    expect(Array.from(await x.data()).every(Number.isFinite)).toBe(true);
    expect(evaluations).toBeGreaterThanOrEqual(2 * 2 * 2); // guidance: conditional and empty-caption rows per step
    await expect(k.diffusion.generateImages(loaded, null, { objective: 'flow', labels: [3] })).rejects.toThrow(/generate: a text-conditioned model takes token ids \(options.tokens\), not labels/);
    x.dispose();
  }, 60_000);
});
