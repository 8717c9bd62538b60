/**
 * Running layers from scripts on plain Float32Arrays: `runLayer` builds a one-layer net, uploads
 * the inputs, runs it on the GPU and returns every output. Handy for one-off scripts (decode a
 * saved volume into joints, render a target, check a loss) and for trying a layer in isolation.
 * @module
 */
import { type Gpu, sharedGpu } from "../kernels/device.ts";
import { type Layer, numel, type Shape } from "./layer.ts";
import { Net } from "./net.ts";

/** An input value with its shape. */
export interface ShapedArray {
  shape: Shape;
  data: Float32Array;
}

/** Options for {@linkcode runLayer}. */
export interface RunLayerOptions {
  /** Device to run on (default: the shared one). */
  gpu?: Gpu;
  /** Batch norm at inference uses running statistics. */
  globalStats?: boolean;
  /** Parameters to set before running, by name within the layer ("weight", "bias", ...). */
  params?: Record<string, Float32Array>;
  /** Initialiser seed (default 1). */
  seed?: number;
}

/**
 * Runs `layer` once on `inputs` (keyed by the layer's bottom names) and returns its outputs
 * keyed by top name.
 */
export async function runLayer(
  layer: Layer,
  inputs: Record<string, ShapedArray | Float32Array>,
  opts: RunLayerOptions = {},
): Promise<Record<string, ShapedArray>> {
  const gpu = opts.gpu ?? await sharedGpu();
  const shapes: Record<string, Shape> = {};
  for (const b of layer.bottoms) {
    const v = inputs[b];
    if (!v) {
      throw new Error(
        `runLayer: layer "${layer.name}" needs input "${b}" (got ${Object.keys(inputs).join(", ")})`,
      );
    }
    shapes[b] = v instanceof Float32Array ? [v.length] : v.shape;
    const n = v instanceof Float32Array ? v.length : v.data.length;
    if (n !== numel(shapes[b])) {
      throw new Error(
        `runLayer: input "${b}" has ${n} values but shape ${shapes[b].join("x")} needs ${numel(shapes[b])}`,
      );
    }
  }
  const net = await Net.build(gpu, { name: layer.name, inputs: shapes, layers: [layer] }, {
    train: false,
    globalStats: opts.globalStats,
    seed: opts.seed,
  });
  try {
    for (const [k, v] of Object.entries(opts.params ?? {})) net.writeParam(`${layer.name}.${k}`, v);
    for (const b of layer.bottoms) {
      const v = inputs[b];
      net.setInput(b, v instanceof Float32Array ? v : v.data);
    }
    net.forward();
    const out: Record<string, ShapedArray> = {};
    for (const t of layer.tops) out[t] = { shape: net.shape(t), data: await net.read(t) };
    await net.readScalars();
    return out;
  } finally {
    net.destroy();
  }
}
