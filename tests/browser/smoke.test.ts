// Temporary smoke test: WebGPU compute round-trip in the browser (Chromium + SwiftShader).
import { describe, expect, it } from 'vitest';

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&data)) {
    data[id.x] = data[id.x] * 2.0;
  }
}
`;

describe('browser WebGPU smoke', () => {
  it('doubles 4 floats on the GPU', async () => {
    expect(navigator.gpu, 'navigator.gpu missing (WebGPU not enabled)').toBeTruthy();
    const adapter = await navigator.gpu.requestAdapter();
    expect(adapter, 'no WebGPU adapter').toBeTruthy();
    const device = await adapter!.requestDevice();
    try {
      const input = new Float32Array([1, 2, 3, 4]);
      const storage = device.createBuffer({
        size: input.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      const readback = device.createBuffer({
        size: input.byteLength,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(storage, 0, input);

      const pipeline = device.createComputePipeline({
        layout: 'auto',
        compute: { module: device.createShaderModule({ code: SHADER }), entryPoint: 'main' },
      });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer: storage } }],
      });

      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(1);
      pass.end();
      encoder.copyBufferToBuffer(storage, 0, readback, 0, input.byteLength);
      device.queue.submit([encoder.finish()]);

      await readback.mapAsync(GPUMapMode.READ);
      const out = Array.from(new Float32Array(readback.getMappedRange().slice(0)));
      readback.unmap();
      expect(out).toEqual([2, 4, 6, 8]);
    } finally {
      device.destroy();
    }
  });
});
