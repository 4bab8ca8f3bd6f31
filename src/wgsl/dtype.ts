/**
 * Element types as the GPU stores and computes them: the lowest layer's view of a dtype (storage size and
 * WGSL spelling). Promotion rules and host conversions live in the tensor layer.
 */

/** Element types. `bool` is stored as u32 (0/1); `f16` is storage-only (math runs in f32) and needs `shader-f16`. */
export type DType = 'f32' | 'f16' | 'i32' | 'u32' | 'bool';

/** Every dtype, in a fixed order. */
export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'u32', 'bool'];

/** Bytes per element in GPU storage. */
export function byteSize(dt: DType): number {
  return dt === 'f16' ? 2 : 4;
}

/** The WGSL scalar type used inside expressions (f16 is computed in f32, bool as WGSL bool). */
export function wgslType(dt: DType): string {
  switch (dt) {
    case 'f32': case 'f16': return 'f32';
    case 'i32': return 'i32';
    case 'u32': return 'u32';
    case 'bool': return 'bool';
  }
}

/** The WGSL element type of a storage buffer holding `dt`. */
export function wgslStorageType(dt: DType): string {
  return dt === 'f16' ? 'f16' : dt === 'bool' ? 'u32' : wgslType(dt);
}
