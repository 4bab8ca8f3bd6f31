/**
 * How kiln's tests and scripts start headless Chromium with WebGPU on a machine without a GPU: Debian's
 * chromium with its SwiftShader Vulkan driver (the flags below), driven by playwright-core, which is
 * given the executable and so never downloads a browser of its own.
 */

/** The Chromium executable (Debian's `chromium` package; `scripts/setup-system.sh` installs it). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags that give headless Chromium WebGPU on SwiftShader, without background traffic. */
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
