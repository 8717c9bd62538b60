/**
 * Caffe's trained weights (`*.caffemodel`): a binary protobuf NetParameter, read without a
 * protobuf library (the few messages involved are small) and written for tests and benchmarks.
 *
 * Only what carries weights is read, by field number (caffe.proto):
 * - NetParameter: name = 1, layer = 100 (LayerParameter), layers = 2 (the deprecated
 *   V1LayerParameter).
 * - LayerParameter: name = 1, type = 2 (string), bottom = 3, top = 4, blobs = 7.
 * - V1LayerParameter: bottom = 2, top = 3, name = 4, type = 5 (an enum), blobs = 6.
 * - BlobProto: shape = 7 (BlobShape: dim = 1, packed int64), data = 5 (packed float),
 *   double_data = 8 (packed double), and the legacy 4-D num/channels/height/width = 1..4.
 * Every other field (diff, param, the layer parameters, ...) is skipped by its wire type, so a
 * model from any Caffe fork reads as long as these fields mean what they mean upstream.
 * @module
 */
import { DataError } from "./errors.ts";

/** One parameter blob of a layer. */
export interface CaffeBlob {
  /** The blob's shape: BlobShape's dims, or [num, channels, height, width] for a legacy blob. */
  shape: number[];
  /** True when the shape came from the legacy num/channels/height/width fields. */
  legacyShape: boolean;
  data: Float32Array;
}

/** One layer of a caffemodel: its name, type and blobs. */
export interface CaffeModelLayer {
  name: string;
  /** The type string ("Convolution"), or for a V1 layer its enum's name ("CONVOLUTION") or number. */
  type: string;
  bottoms: string[];
  tops: string[];
  blobs: CaffeBlob[];
}

/** A decoded caffemodel. */
export interface CaffeModel {
  name: string;
  layers: CaffeModelLayer[];
  /** Which NetParameter field held the layers: "layer" (current) or "layers" (V1). */
  format: "layer" | "layers";
}

/** Names of the V1LayerParameter.LayerType values that carry blobs or appear in the seed's nets. */
const V1_TYPES: Record<number, string> = {
  3: "CONCAT",
  4: "CONVOLUTION",
  14: "INNER_PRODUCT",
  17: "POOLING",
  18: "RELU",
  25: "ELTWISE",
  39: "DECONVOLUTION",
};

/** The current type name of a V1 enum type name (CONVOLUTION -> Convolution), for the types above. */
export const V1_TYPE_NAMES: Record<string, string> = {
  CONCAT: "Concat",
  CONVOLUTION: "Convolution",
  INNER_PRODUCT: "InnerProduct",
  POOLING: "Pooling",
  RELU: "ReLU",
  ELTWISE: "Eltwise",
  DECONVOLUTION: "Deconvolution",
};

const WIRE_NAMES = ["varint", "64-bit", "length-delimited", "group start", "group end", "32-bit"];

/** Reads protobuf wire format from a byte range. */
class WireReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos: number;
  readonly end: number;
  readonly #fail: (what: string, at: number) => never;

  constructor(bytes: Uint8Array, start: number, end: number, fail: (what: string, at: number) => never) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
    this.#fail = fail;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  fail(what: string, at = this.pos): never {
    return this.#fail(what, at);
  }

  /** A varint as a Number (exact below 2^53; larger values only ever appear in fields we skip). */
  varint(): number {
    let result = 0, mul = 1;
    const start = this.pos;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) {
        this.fail("a varint running past the end of its message (truncated file?)", start);
      }
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    return this.fail("a varint longer than 10 bytes (not protobuf data)", start);
  }

  /** The next field's number and wire type, or null at the end. */
  tag(): { field: number; wire: number; at: number } | null {
    if (this.done) return null;
    const at = this.pos;
    const key = this.varint();
    const field = Math.floor(key / 8), wire = key % 8;
    if (field === 0 || wire > 5) {
      this.fail(`a field key, got field ${field} with wire type ${wire} (not protobuf data?)`, at);
    }
    return { field, wire, at };
  }

  /** The byte range of a length-delimited field's payload. */
  delimited(): { start: number; end: number } {
    const at = this.pos;
    const n = this.varint();
    if (this.pos + n > this.end) {
      this.fail(
        `a ${n}-byte field that fits its message (${this.end - this.pos} bytes left; truncated file?)`,
        at,
      );
    }
    const start = this.pos;
    this.pos += n;
    return { start, end: this.pos };
  }

  sub(r: { start: number; end: number }): WireReader {
    return new WireReader(this.bytes, r.start, r.end, this.#fail);
  }

  string(): string {
    const r = this.delimited();
    return new TextDecoder().decode(this.bytes.subarray(r.start, r.end));
  }

  /** Skips one field's value of the given wire type. */
  skip(wire: number, field: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.delimited();
        return;
      case 5:
        this.advance(4);
        return;
      case 3: {
        // A (deprecated) group: skip fields up to the matching end-group tag.
        while (true) {
          const t = this.tag();
          if (!t) this.fail(`the end of group ${field} (truncated file?)`);
          if (t!.wire === 4) {
            if (t!.field !== field) {
              this.fail(`the end of group ${field}, got the end of group ${t!.field}`, t!.at);
            }
            return;
          }
          this.skip(t!.wire, t!.field);
        }
      }
      default:
        this.fail(`a field value, got a stray ${WIRE_NAMES[wire]} tag`);
    }
  }

  advance(n: number): void {
    if (this.pos + n > this.end) this.fail(`${n} more bytes (truncated file?)`);
    this.pos += n;
  }
}

/** Options of {@linkcode decodeCaffeModel}. */
export interface DecodeOptions {
  /** File name used in errors. */
  source?: string;
}

/**
 * Decodes a caffemodel. Errors (a truncated file, bytes that are not protobuf, a field of the
 * wrong wire type, a blob whose data disagrees with its shape) name the file, the byte offset and
 * the layer being read.
 */
export function decodeCaffeModel(bytes: Uint8Array, opts: DecodeOptions = {}): CaffeModel {
  const src = opts.source ?? "<caffemodel>";
  let context = "the NetParameter";
  const fail = (what: string, at: number): never => {
    throw new DataError(src, `${what} at byte ${at} in ${context}`);
  };
  const r = new WireReader(bytes, 0, bytes.length, fail);
  const expectWire = (t: { field: number; wire: number; at: number }, wire: number, what: string) => {
    if (t.wire !== wire) {
      fail(
        `${what} (field ${t.field}) as ${WIRE_NAMES[wire]}, got ${WIRE_NAMES[t.wire]} (not a caffemodel?)`,
        t.at,
      );
    }
  };
  const model: CaffeModel = { name: "", layers: [], format: "layer" };
  let sawV1 = false, sawV2 = false;
  for (let t = r.tag(); t; t = r.tag()) {
    if (t.field === 1) {
      expectWire(t, 2, "the net name");
      model.name = r.string();
    } else if (t.field === 100 || t.field === 2) {
      expectWire(t, 2, t.field === 100 ? "a layer" : "a V1 layer");
      const v1 = t.field === 2;
      if (v1) sawV1 = true;
      else sawV2 = true;
      context = `layer #${model.layers.length} (${v1 ? "layers" : "layer"} field at byte ${t.at})`;
      const start = r.pos, size = r.varint();
      if (r.pos + size > r.end) {
        // A cut file usually ends inside a layer: name it from the bytes that are there.
        const name = peekName(bytes, r.pos, r.end, v1 ? 4 : 1);
        if (name !== undefined) context = `layer #${model.layers.length} "${name}"`;
        fail(
          `the layer's ${size} bytes, got ${r.end - r.pos} before the end of the file (truncated file?)`,
          start,
        );
      }
      r.pos = start;
      model.layers.push(readLayer(r.sub(r.delimited()), v1, (name) => {
        context = `layer #${model.layers.length} "${name}"`;
      }));
      context = "the NetParameter";
    } else r.skip(t.wire, t.field);
  }
  if (sawV1 && sawV2) {
    throw new DataError(
      src,
      `either "layer" or the deprecated "layers", got both (Caffe rejects such a net)`,
    );
  }
  model.format = sawV1 ? "layers" : "layer";
  if (!model.layers.length) {
    throw new DataError(src, "a caffemodel (a NetParameter with layers)", {
      got: `${bytes.length} bytes without any layer`,
    });
  }
  return model;
}

/** The name field of a (possibly cut) layer message, or undefined. */
function peekName(bytes: Uint8Array, start: number, end: number, field: number): string | undefined {
  const r = new WireReader(bytes, start, end, () => {
    throw new RangeError("cut");
  });
  try {
    for (let t = r.tag(); t; t = r.tag()) {
      if (t.field === field && t.wire === 2) return r.string();
      r.skip(t.wire, t.field);
    }
  } catch { /* the cut comes before the name */ }
  return undefined;
}

function readLayer(r: WireReader, v1: boolean, named: (name: string) => void): CaffeModelLayer {
  const f = v1
    ? { name: 4, type: 5, bottom: 2, top: 3, blobs: 6 }
    : { name: 1, type: 2, bottom: 3, top: 4, blobs: 7 };
  const layer: CaffeModelLayer = { name: "", type: "", bottoms: [], tops: [], blobs: [] };
  const wire = (t: { field: number; wire: number; at: number }, want: number, what: string) => {
    if (t.wire !== want) r.fail(`${what} as ${WIRE_NAMES[want]}, got ${WIRE_NAMES[t.wire]}`, t.at);
  };
  for (let t = r.tag(); t; t = r.tag()) {
    if (t.field === f.name) {
      wire(t, 2, "the layer name");
      layer.name = r.string();
      named(layer.name);
    } else if (t.field === f.type) {
      if (v1) {
        wire(t, 0, "the V1 layer type");
        const n = r.varint();
        layer.type = V1_TYPES[n] ?? String(n);
      } else {
        wire(t, 2, "the layer type");
        layer.type = r.string();
      }
    } else if (t.field === f.bottom) {
      wire(t, 2, "a bottom");
      layer.bottoms.push(r.string());
    } else if (t.field === f.top) {
      wire(t, 2, "a top");
      layer.tops.push(r.string());
    } else if (t.field === f.blobs) {
      wire(t, 2, "a blob");
      layer.blobs.push(readBlob(r.sub(r.delimited()), layer.blobs.length));
    } else r.skip(t.wire, t.field);
  }
  return layer;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Packed little-endian floats (or doubles) from a byte range, as f32. */
function packed(
  r: WireReader,
  range: { start: number; end: number },
  width: 4 | 8,
  what: string,
): Float32Array {
  const n = range.end - range.start;
  if (n % width) {
    r.fail(`${what}: ${n} bytes of packed ${width === 4 ? "float" : "double"}s (not a multiple of ${width})`);
  }
  const count = n / width;
  const offset = r.bytes.byteOffset + range.start;
  if (width === 4 && LITTLE_ENDIAN) {
    // One copy, so the result owns aligned memory whatever the message's alignment.
    return new Float32Array(r.bytes.buffer.slice(offset, offset + n) as ArrayBuffer);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = width === 4
      ? r.view.getFloat32(range.start + 4 * i, true)
      : r.view.getFloat64(range.start + 8 * i, true);
  }
  return out;
}

function concat(chunks: Float32Array[]): Float32Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function readBlob(r: WireReader, index: number): CaffeBlob {
  let shape: number[] | null = null;
  const legacy = [0, 0, 0, 0];
  let sawLegacy = false;
  // Chunks of data (field 5, packed or one float per tag) and of double_data (field 8), in order.
  const floats: Float32Array[] = [];
  const doubles: Float32Array[] = [];
  const what = `blob #${index}`;
  for (let t = r.tag(); t; t = r.tag()) {
    switch (t.field) {
      case 7: { // shape: BlobShape { repeated int64 dim = 1 [packed] }
        if (t.wire !== 2) r.fail(`${what}: shape as length-delimited`, t.at);
        const s = r.sub(r.delimited());
        shape = [];
        for (let u = s.tag(); u; u = s.tag()) {
          if (u.field !== 1) s.skip(u.wire, u.field);
          else if (u.wire === 2) {
            const p = s.sub(s.delimited());
            while (!p.done) shape.push(p.varint());
          } else if (u.wire === 0) shape.push(s.varint());
          else s.fail(`${what}: a shape dim as a varint`, u.at);
        }
        break;
      }
      case 5: // data: packed floats (or, from old writers, one float per tag)
        if (t.wire === 2) floats.push(packed(r, r.delimited(), 4, what));
        else if (t.wire === 5) {
          floats.push(new Float32Array([r.view.getFloat32(r.pos, true)]));
          r.advance(4);
        } else r.fail(`${what}: data as packed floats`, t.at);
        break;
      case 8: // double_data
        if (t.wire === 2) doubles.push(packed(r, r.delimited(), 8, what));
        else if (t.wire === 1) {
          doubles.push(new Float32Array([r.view.getFloat64(r.pos, true)]));
          r.advance(8);
        } else r.fail(`${what}: double_data as packed doubles`, t.at);
        break;
      case 1:
      case 2:
      case 3:
      case 4:
        if (t.wire !== 0) r.fail(`${what}: num/channels/height/width as varints`, t.at);
        legacy[t.field - 1] = r.varint();
        sawLegacy = true;
        break;
      default:
        r.skip(t.wire, t.field);
    }
  }
  // As Caffe reads a blob: double_data when there is any, else data.
  const data = concat(doubles.length ? doubles : floats);
  // Like Caffe: the shape field wins; else the legacy 4-D fields; else a scalar shape.
  const dims = shape ?? (sawLegacy ? legacy : []);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    r.fail(`${what}: shape [${dims.join(", ")}] holds ${count} values but the blob has ${data.length}`);
  }
  return { shape: dims, legacyShape: shape === null && sawLegacy, data };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A message under construction: byte chunks and their total length. */
class WireWriter {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  #small: number[] = [];

  #flush(): void {
    if (!this.#small.length) return;
    this.chunks.push(Uint8Array.from(this.#small));
    this.#small = [];
  }

  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`varint ${v}: expected a non-negative safe integer`);
    }
    while (v >= 0x80) {
      this.#small.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
      this.length++;
    }
    this.#small.push(v);
    this.length++;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    this.#flush();
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: WireWriter): this {
    m.#flush();
    this.tag(field, 2).varint(m.length);
    this.#flush();
    this.chunks.push(...m.chunks);
    this.length += m.length;
    return this;
  }

  finish(): Uint8Array {
    this.#flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function floatBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const v = new DataView(out.buffer);
  data.forEach((x, i) => v.setFloat32(4 * i, x, true));
  return out;
}

/** A layer to write. */
export interface CaffeModelLayerInput {
  name: string;
  type: string;
  bottoms?: string[];
  tops?: string[];
  blobs: { shape: readonly number[]; data: Float32Array }[];
}

/** Options of {@linkcode encodeCaffeModel}. */
export interface EncodeOptions {
  /** Write V1 `layers` (type as an enum, from {@linkcode V1_TYPE_NAMES}) instead of `layer`. Default false. */
  v1?: boolean;
  /** Write shapes as legacy num/channels/height/width (padded to 4 axes with leading 1s). Default false. */
  legacyShape?: boolean;
}

/** Encodes a caffemodel; the inverse of {@linkcode decodeCaffeModel} (for tests and benchmarks). */
export function encodeCaffeModel(
  model: { name: string; layers: CaffeModelLayerInput[] },
  opts: EncodeOptions = {},
): Uint8Array {
  const net = new WireWriter().string(1, model.name);
  const v1Enum = Object.fromEntries(Object.entries(V1_TYPES).map(([n, t]) => [V1_TYPE_NAMES[t], Number(n)]));
  for (const l of model.layers) {
    const m = new WireWriter();
    const f = opts.v1 ? { name: 4, bottom: 2, top: 3, blobs: 6 } : { name: 1, bottom: 3, top: 4, blobs: 7 };
    m.string(f.name, l.name);
    if (opts.v1) {
      const n = v1Enum[l.type];
      if (n === undefined) throw new RangeError(`layer "${l.name}": type ${l.type} has no V1 enum value`);
      m.tag(5, 0).varint(n);
    } else m.string(2, l.type);
    for (const b of l.bottoms ?? []) m.string(f.bottom, b);
    for (const t of l.tops ?? []) m.string(f.top, t);
    for (const b of l.blobs) {
      const count = b.shape.reduce((a, d) => a * d, 1);
      if (count !== b.data.length) {
        throw new RangeError(`layer "${l.name}": shape [${b.shape.join(", ")}] vs ${b.data.length} values`);
      }
      const blob = new WireWriter();
      if (opts.legacyShape) {
        if (b.shape.length > 4) throw new RangeError(`layer "${l.name}": a legacy shape has at most 4 axes`);
        const dims = [...Array(4 - b.shape.length).fill(1), ...b.shape];
        dims.forEach((d, i) => blob.tag(i + 1, 0).varint(d));
      } else {
        const dims = new WireWriter();
        for (const d of b.shape) dims.varint(d);
        blob.message(7, new WireWriter().message(1, dims));
      }
      blob.bytes(5, floatBytes(b.data));
      m.message(f.blobs, blob);
    }
    net.message(opts.v1 ? 2 : 100, m);
  }
  return net.finish();
}

/** Reads and decodes a caffemodel file; errors name the file. */
export async function readCaffeModel(path: string): Promise<CaffeModel> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new DataError(path, "a readable caffemodel file", { got: (e as Error).message, cause: e });
  }
  return decodeCaffeModel(bytes, { source: path });
}
