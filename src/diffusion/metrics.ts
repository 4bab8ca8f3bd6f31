/**
 * Sample-quality metrics on classifier features and probabilities (float64, on the host): the Fréchet
 * distance between two Gaussian fits of features (FID when the features come from a classifier's
 * penultimate layer), and the Inception-style score exp(E KL(p(y|x) ‖ p(y))).
 */

/** Mean and covariance (unbiased) of n rows of d features. */
export function featureStats(features: ArrayLike<number>, n: number, d: number): { mean: Float64Array; cov: Float64Array } {
  if (features.length !== n * d) throw new Error(`featureStats: ${features.length} values are not ${n} rows of ${d}`);
  if (n < 2) throw new Error(`featureStats: need at least 2 rows, got ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += features[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j]! - mean[j]!;
    for (let a = 0; a < d; a++) {
      const ra = row[a]!;
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b]! += ra * row[b]!;
    }
  }
  for (let a = 0; a < d; a++) for (let b = a; b < d; b++) {
    const v = cov[a * d + b]! / (n - 1);
    cov[a * d + b] = v;
    cov[b * d + a] = v;
  }
  return { mean, cov };
}

/** Eigenvalues and eigenvectors (columns of `vectors`) of a symmetric d×d matrix, by cyclic Jacobi rotations. */
export function symmetricEigen(m: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q]! ** 2;
    if (off < 1e-22 * (1 + Array.from({ length: d }, (_, i) => a[i * d + i]! ** 2).reduce((x, y) => x + y, 0))) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q]! - a[p * d + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p]!, akq = a[k * d + q]!;
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k]!, aqk = a[q * d + k]!;
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!, vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => a[i * d + i]!), vectors: v };
}

/**
 * Fréchet distance ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½) between two Gaussians (the trace
 * term through eigenvalues of the symmetric PSD product, so no non-symmetric square root is needed).
 */
export function frechetDistance(a: { mean: Float64Array; cov: Float64Array }, b: { mean: Float64Array; cov: Float64Array }): number {
  const d = a.mean.length;
  if (b.mean.length !== d) throw new Error(`frechetDistance: feature sizes ${d} and ${b.mean.length} differ`);
  let diff = 0;
  for (let i = 0; i < d; i++) diff += (a.mean[i]! - b.mean[i]!) ** 2;
  const ea = symmetricEigen(a.cov, d);
  // S = Σ₁^½ = V diag(√λ) Vᵀ
  const s = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    let acc = 0;
    for (let k = 0; k < d; k++) acc += ea.vectors[i * d + k]! * Math.sqrt(Math.max(ea.values[k]!, 0)) * ea.vectors[j * d + k]!;
    s[i * d + j] = acc;
  }
  const mul = (x: Float64Array, y: Float64Array) => {
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) {
      const xik = x[i * d + k]!;
      if (xik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j]! += xik * y[k * d + j]!;
    }
    return out;
  };
  const inner = mul(mul(s, b.cov), s);
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) {
    const m = 0.5 * (inner[i * d + j]! + inner[j * d + i]!);
    inner[i * d + j] = m;
    inner[j * d + i] = m;
  }
  const traceSqrt = symmetricEigen(inner, d).values.reduce((acc, l) => acc + Math.sqrt(Math.max(l, 0)), 0);
  let tr = 0;
  for (let i = 0; i < d; i++) tr += a.cov[i * d + i]! + b.cov[i * d + i]!;
  return diff + tr - 2 * traceSqrt;
}

/** exp(mean KL(p(y|x) ‖ p(y))) over n rows of class probabilities. */
export function inceptionScore(probs: ArrayLike<number>, n: number, classes: number): number {
  const marginal = new Float64Array(classes);
  for (let i = 0; i < n; i++) for (let c = 0; c < classes; c++) marginal[c]! += probs[i * classes + c]! / n;
  let kl = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < classes; c++) {
    const p = probs[i * classes + c]!;
    if (p > 0) kl += p * (Math.log(p) - Math.log(marginal[c]!));
  }
  return Math.exp(kl / n);
}
