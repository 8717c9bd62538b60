/**
 * The safetensors format (https://github.com/huggingface/safetensors), so weights written here
 * open with `safetensors.numpy.load_file` / `safetensors.torch.load_file` and weights exported
 * from Python open here. Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * mapping each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to
 * the data section) plus an optional `__metadata__` object of string values, then the tensors'
 * bytes, packed with no holes.
 *
 * We always write F32. Reading accepts F32 as is and widens F64/F16/BF16 to f32, because models
 * exported from Python are often half precision; every other dtype is a clear error.
 * @module
 */
import { dirname } from "node:path";

/** Element types this module can read. */
export type Dtype = "F32" | "F64" | "F16" | "BF16";

const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

/** Where one tensor lives in a file, as its header says. */
export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Byte range in the data section (after the header). */
  dataOffsets: [number, number];
}

/** A tensor as f32 values plus its shape. */
export interface NamedTensor {
  shape: readonly number[];
  data: Float32Array;
}

/** A parsed header: tensor descriptions in file order plus the string metadata. */
export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** A whole decoded file. */
export interface SafetensorsFile {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
}

/** A malformed or unsupported safetensors file; the message names the file and, where known, the tensor. */
export class SafetensorsError extends Error {
  constructor(source: string, detail: string, tensor?: string) {
    super(`${source}: ${tensor !== undefined ? `tensor "${tensor}": ` : ""}${detail}`);
    this.name = "SafetensorsError";
  }
}

/** Same bound as the reference implementation: a bigger header is almost surely a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Parses and validates the header in `bytes` (which must hold at least the first 8 + N bytes). */
export function parseHeader(bytes: Uint8Array, opts: { source?: string } = {}): SafetensorsHeader {
  const src = opts.source ?? "<safetensors>";
  if (bytes.length < 8) {
    throw new SafetensorsError(src, `file is ${bytes.length} bytes, too short for the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n < 2 || n > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      src,
      `header length ${n} is not in [2, ${MAX_HEADER_BYTES}] (not a safetensors file?)`,
    );
  }
  if (bytes.length < 8 + n) {
    throw new SafetensorsError(src, `header says ${n} bytes but the file ends after ${bytes.length - 8}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError(src, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw new SafetensorsError(src, "header does not start with '{'");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(src, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new SafetensorsError(src, "header JSON is not an object");
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new SafetensorsError(src, "__metadata__ must be an object of strings");
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new SafetensorsError(src, `__metadata__ value "${k}" is ${typeof v}, expected a string`);
        }
        metadata[k] = v;
      }
      continue;
    }
    tensors.set(name, parseTensorInfo(src, name, value));
  }
  // The data section must be covered exactly once, in some order, with no gaps.
  const sorted = [...tensors.entries()].sort((a, b) =>
    a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]
  );
  let cursor = 0;
  for (const [name, info] of sorted) {
    const [begin, end] = info.dataOffsets;
    if (begin !== cursor) {
      throw new SafetensorsError(
        src,
        begin > cursor
          ? `data_offsets start at ${begin}, leaving a hole after byte ${cursor}`
          : `data_offsets [${begin}, ${end}] overlap the previous tensor (which ends at ${cursor})`,
        name,
      );
    }
    cursor = end;
  }
  return { tensors, metadata, dataStart: 8 + n };
}

function parseTensorInfo(src: string, name: string, value: unknown): TensorInfo {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SafetensorsError(src, "entry is not an object with dtype, shape and data_offsets", name);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.dtype !== "string") throw new SafetensorsError(src, "missing dtype", name);
  if (!(v.dtype in DTYPE_BYTES)) {
    throw new SafetensorsError(
      src,
      `dtype ${v.dtype} is not supported (readable: ${Object.keys(DTYPE_BYTES).join(", ")})`,
      name,
    );
  }
  const dtype = v.dtype as Dtype;
  const okInt = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  if (!Array.isArray(v.shape) || !v.shape.every(okInt)) {
    throw new SafetensorsError(
      src,
      `shape ${JSON.stringify(v.shape)} is not a list of non-negative integers`,
      name,
    );
  }
  const offs = v.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(okInt) || offs[1] < offs[0]) {
    throw new SafetensorsError(
      src,
      `data_offsets ${JSON.stringify(offs)} is not [begin, end] with begin <= end`,
      name,
    );
  }
  const shape = v.shape as number[];
  const need = numelOf(shape) * DTYPE_BYTES[dtype];
  if (offs[1] - offs[0] !== need) {
    throw new SafetensorsError(
      src,
      `data_offsets [${offs[0]}, ${offs[1]}] span ${offs[1] - offs[0]} bytes but shape [${
        shape.join(", ")
      }] ` +
        `of ${dtype} needs ${need}`,
      name,
    );
  }
  return { dtype, shape, dataOffsets: [offs[0], offs[1]] };
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Converts one tensor's raw little-endian bytes to f32 values. */
function toF32(raw: Uint8Array, dtype: Dtype): Float32Array {
  const n = raw.length / DTYPE_BYTES[dtype];
  if (dtype === "F32" && LITTLE_ENDIAN) {
    // Copy: the source offset need not be 4-byte aligned, and callers may keep the result.
    return new Float32Array(raw.slice().buffer);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  if (dtype === "F32") { for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true); }
  else if (dtype === "F64") { for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true); }
  else if (dtype === "F16") { for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true)); }
  else {
    // bf16 is the upper half of an f32.
    const bits = new DataView(out.buffer);
    for (let i = 0; i < n; i++) bits.setUint32(4 * i, view.getUint16(2 * i, true) << 16, true);
    if (!LITTLE_ENDIAN) { for (let i = 0; i < n; i++) out[i] = bits.getFloat32(4 * i, true); }
  }
  return out;
}

/** Decodes a whole safetensors file held in memory; `source` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, opts: { source?: string } = {}): SafetensorsFile {
  const src = opts.source ?? "<safetensors>";
  const header = parseHeader(bytes, opts);
  const dataBytes = bytes.length - header.dataStart;
  let end = 0;
  for (const info of header.tensors.values()) end = Math.max(end, info.dataOffsets[1]);
  if (end !== dataBytes) {
    throw new SafetensorsError(
      src,
      end > dataBytes
        ? `truncated: tensors need ${end} data bytes but the file holds ${dataBytes}`
        : `${dataBytes - end} trailing bytes after the last tensor`,
    );
  }
  const tensors = new Map<string, NamedTensor>();
  for (const [name, info] of header.tensors) {
    const raw = bytes.subarray(
      header.dataStart + info.dataOffsets[0],
      header.dataStart + info.dataOffsets[1],
    );
    const data = toF32(raw, info.dtype);
    tensors.set(name, { shape: info.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

/**
 * Encodes f32 tensors (in the given order) and string metadata. The header is padded with spaces
 * to a multiple of 8 bytes so every tensor starts aligned, as the reference writer does.
 */
export function encodeSafetensors(
  tensors: Iterable<[string, NamedTensor]> | Map<string, NamedTensor>,
  opts: { metadata?: Record<string, string> } = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`safetensors metadata "${k}" must be a string, got ${typeof v}`);
      }
    }
    header.__metadata__ = opts.metadata;
  }
  const list: [string, NamedTensor][] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new TypeError(`"__metadata__" is reserved and cannot name a tensor`);
    if (name in header) throw new TypeError(`duplicate tensor name "${name}"`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new TypeError(`tensor "${name}": shape [${t.shape.join(", ")}] is not non-negative integers`);
    }
    if (numelOf(t.shape) !== t.data.length) {
      throw new TypeError(
        `tensor "${name}": shape [${t.shape.join(", ")}] has ${
          numelOf(t.shape)
        } values, data has ${t.data.length}`,
      );
    }
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
    list.push([name, t]);
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const [, t] of list) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    } else {
      const v = new DataView(out.buffer, at, t.data.byteLength);
      t.data.forEach((x, i) => v.setFloat32(4 * i, x, true));
    }
    at += t.data.byteLength;
  }
  return out;
}

/** Reads and decodes a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new SafetensorsError(path, `cannot read: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, { source: path });
}

/** Reads only the header of a safetensors file (cheap even for large files). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new SafetensorsError(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const head = await readExactly(file, 8);
    if (head.length < 8) return parseHeader(head, { source: path });
    const n = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (n > MAX_HEADER_BYTES) return parseHeader(head, { source: path });
    const rest = await readExactly(file, n);
    const all = new Uint8Array(8 + rest.length);
    all.set(head);
    all.set(rest, 8);
    return parseHeader(all, { source: path });
  } finally {
    file.close();
  }
}

async function readExactly(file: Deno.FsFile, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await file.read(buf.subarray(got));
    if (r === null) break;
    got += r;
  }
  return buf.subarray(0, got);
}

/**
 * Writes `bytes` to `path` atomically: a temporary file in the same folder is written, flushed
 * to disk and renamed over `path`, so a crash leaves either the old file or the new one.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dirname(path), { recursive: true });
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      let at = 0;
      while (at < bytes.length) at += await f.write(bytes.subarray(at));
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Encodes and atomically writes a safetensors file. */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, NamedTensor]> | Map<string, NamedTensor>,
  opts: { metadata?: Record<string, string> } = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, opts));
}
