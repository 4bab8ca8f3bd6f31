/**
 * A word tokenizer for short captions. Why words rather than bytes or characters: the captions come from a
 * closed vocabulary of about thirty words, so a word embedding lets a tiny text encoder tie "seven" and "7"
 * to one meaning within a short training run, and sequences stay short (a caption is at most eight tokens
 * against about thirty characters) — every cross-attention layer attends over them at every denoising step.
 * The price is that a word outside the vocabulary becomes <unk>; the held-out phrasings of the caption
 * dataset rearrange training words, so they need none.
 *
 * Ids: 0 <pad>, 1 <bos>, 2 <unk>, then the words in sorted order. Every sequence starts with <bos> and is
 * padded with <pad> to `length`, so the empty caption — classifier-free guidance's "no caption" — is the
 * well-defined sequence [<bos>, <pad>, …]: one token to attend to, never an all-padding row.
 */
import { tensor, type Tensor } from '../tensor/index.js';

/** The serializable description of a `WordTokenizer` (stored in checkpoint metadata). */
export interface TokenizerSpec {
  kind: 'word';
  /** The words, in id order after the three special tokens. */
  words: string[];
  /** Tokens per sequence, <bos> and padding included. */
  length: number;
}

/** Lower-cases and splits a caption into words; a comma is a word of its own. */
export function splitWords(text: string): string[] {
  if (typeof text !== 'string') throw new Error(`splitWords: expected a string, got ${typeof text}`);
  return text.toLowerCase().replace(/,/g, ' , ').split(/\s+/).filter((w) => w);
}

/** Maps captions to fixed-length id sequences [N, length] (see the module comment for the id layout). */
export class WordTokenizer {
  /** Padding (masked out of every attention over the text; `k.nn.TEXT_PAD_ID`). */
  static readonly PAD = 0;
  /** Starts every sequence (`k.nn.TEXT_BOS_ID`). */
  static readonly BOS = 1;
  /** A word outside the vocabulary. */
  static readonly UNK = 2;
  private readonly ids = new Map<string, number>();
  constructor(readonly words: readonly string[], readonly length: number) {
    if (!Number.isInteger(length) || length < 2) throw new Error(`WordTokenizer: length must be an integer ≥ 2 (<bos> and at least one word), got ${length}`);
    words.forEach((w, i) => {
      if (typeof w !== 'string' || !w || /\s/.test(w) || this.ids.has(w)) throw new Error(`WordTokenizer: words must be distinct non-empty strings without spaces, got ${JSON.stringify(w)}`);
      this.ids.set(w, i + 3);
    });
  }
  /** A tokenizer over the words of `captions` (sorted), with room for the longest caption plus <bos> unless `length` is given. */
  static fromCaptions(captions: string[], length?: number): WordTokenizer {
    const split = captions.map(splitWords);
    const words = [...new Set(split.flat())].sort();
    return new WordTokenizer(words, length ?? 1 + Math.max(1, ...split.map((s) => s.length)));
  }
  /** The tokenizer a spec describes. */
  static fromSpec(spec: TokenizerSpec): WordTokenizer {
    if (!spec || spec.kind !== 'word' || !Array.isArray(spec.words)) throw new Error(`WordTokenizer.fromSpec: expected {kind: 'word', words, length}, got ${JSON.stringify(spec)}`);
    return new WordTokenizer(spec.words, spec.length);
  }
  /** Its serializable description. */
  toSpec(): TokenizerSpec {
    return { kind: 'word', words: [...this.words], length: this.length };
  }
  /** Number of ids (special tokens included): the text encoder's vocabulary size. */
  get vocabSize(): number {
    return this.words.length + 3;
  }
  /** The ids of each caption, <bos> first, padded; a caption longer than `length − 1` words is an error. */
  encodeIds(texts: string[]): Int32Array {
    if (!Array.isArray(texts)) throw new Error(`WordTokenizer.encode: expected an array of captions, got ${typeof texts}`);
    const L = this.length;
    const out = new Int32Array(texts.length * L);
    texts.forEach((t, n) => {
      const w = splitWords(t);
      if (w.length > L - 1) throw new Error(`WordTokenizer.encode: caption ${JSON.stringify(t)} has ${w.length} words, more than the ${L - 1} that fit in length ${L} after <bos>`);
      out[n * L] = WordTokenizer.BOS;
      w.forEach((word, i) => (out[n * L + 1 + i] = this.ids.get(word) ?? WordTokenizer.UNK));
    });
    return out;
  }
  /** The words of `text` outside the vocabulary (they would become <unk>), in order of appearance, without repeats. */
  unknownWords(text: string): string[] {
    return [...new Set(splitWords(text).filter((w) => !this.ids.has(w)))];
  }
  /**
   * The ids of prompts a user typed: like `encodeIds`, but a word outside the vocabulary or a prompt that does
   * not fit is an error naming `op`, the prompt and the words the tokenizer knows.
   */
  encodePrompts(op: string, prompts: string[]): Int32Array {
    for (const p of prompts) {
      const unknown = this.unknownWords(p);
      if (unknown.length) throw new Error(`${op}: ${unknown.map((w) => JSON.stringify(w)).join(', ')} in ${JSON.stringify(p)} ${unknown.length > 1 ? 'are' : 'is'} not in the model's vocabulary; it knows ${this.words.map((w) => JSON.stringify(w)).join(' ')}`);
      const n = splitWords(p).length;
      if (n > this.length - 1) throw new Error(`${op}: ${JSON.stringify(p)} has ${n} words; the model reads at most ${this.length - 1}`);
    }
    return this.encodeIds(prompts);
  }
  /** The ids of the captions as an i32 tensor [N, length]. */
  encode(texts: string[]): Tensor {
    return tensor(this.encodeIds(texts), { shape: [texts.length, this.length], dtype: 'i32' });
  }
  /** The ids of the empty caption (classifier-free guidance's unconditional input): [<bos>, <pad>, …]. */
  unconditionalIds(): Int32Array {
    return this.encodeIds(['']);
  }
  /** The words of an id sequence, without <bos> and padding. */
  decode(ids: ArrayLike<number>): string {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id === WordTokenizer.PAD || id === WordTokenizer.BOS) continue;
      out.push(id === WordTokenizer.UNK ? '<unk>' : this.words[id - 3] ?? '<unk>');
    }
    return out.join(' ').replace(/ ,/g, ',');
  }
}
