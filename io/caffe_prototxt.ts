/**
 * Caffe's network definitions (`*.prototxt`): protobuf text format, read into a generic message
 * tree that keeps every field, in order, with its line, and the net's layers on top of it.
 *
 * The text format: `name: value` (value a number, a quoted string, or an identifier such as an
 * enum value or true/false), `name { ... }` or `name: { ... }` for a sub-message, `name: [a, b]`
 * for a repeated scalar, `#` comments to the end of a line, and `,` or `;` allowed after a field.
 * Nothing here knows Caffe's schema: unknown layer types and parameters are kept as they are, so
 * the seed's custom layers (custom_layers_mine.proto) parse like the built-in ones.
 * @module
 */
import { DataError } from "./errors.ts";

/** A scalar field value: numbers stay numbers; quoted strings and identifiers (enum values) are strings. */
export type PrototxtScalar = number | string | boolean;

/** One field of a message, as written. */
export interface PrototxtField {
  name: string;
  value: PrototxtScalar | PrototxtMessage;
  /** 1-based line of the field name. */
  line: number;
  /** True for a quoted string (false for an identifier such as `TRAIN`). */
  quoted?: boolean;
}

/** A text-format message: its fields in file order (repeated fields appear once per value). */
export class PrototxtMessage {
  readonly fields: PrototxtField[] = [];
  /** 1-based line where the message opens (1 for a whole file). */
  readonly line: number;
  /** File name used in errors. */
  readonly source: string;

  constructor(source: string, line: number) {
    this.source = source;
    this.line = line;
  }

  /** Every value of field `name`, in order. */
  all(name: string): (PrototxtScalar | PrototxtMessage)[] {
    return this.fields.filter((f) => f.name === name).map((f) => f.value);
  }

  /** Whether field `name` is present. */
  has(name: string): boolean {
    return this.fields.some((f) => f.name === name);
  }

  /** The last value of a singular field (protobuf's rule for a repeated singular field), or undefined. */
  get(name: string): PrototxtScalar | PrototxtMessage | undefined {
    for (let i = this.fields.length - 1; i >= 0; i--) {
      if (this.fields[i].name === name) return this.fields[i].value;
    }
    return undefined;
  }

  /** A sub-message field; undefined when absent, an error naming the line when it is a scalar. */
  message(name: string): PrototxtMessage | undefined {
    const v = this.get(name);
    if (v === undefined || v instanceof PrototxtMessage) return v;
    throw this.#wrong(name, "a message { ... }", JSON.stringify(v));
  }

  /** Every sub-message of a repeated message field. */
  messages(name: string): PrototxtMessage[] {
    return this.all(name).map((v) => {
      if (v instanceof PrototxtMessage) return v;
      throw this.#wrong(name, "a message { ... }", JSON.stringify(v));
    });
  }

  /** A string (or enum identifier) field; `fallback` when absent. */
  string(name: string, fallback?: string): string | undefined {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v === "string") return v;
    throw this.#wrong(name, "a string", v instanceof PrototxtMessage ? "a message" : String(v));
  }

  /** Every value of a repeated string field. */
  strings(name: string): string[] {
    return this.all(name).map((v) => {
      if (typeof v === "string") return v;
      throw this.#wrong(name, "a string", v instanceof PrototxtMessage ? "a message" : String(v));
    });
  }

  /** A numeric field; `fallback` when absent. */
  number(name: string, fallback?: number): number | undefined {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v === "number") return v;
    throw this.#wrong(name, "a number", v instanceof PrototxtMessage ? "a message" : JSON.stringify(v));
  }

  /** Every value of a repeated numeric field. */
  numbers(name: string): number[] {
    return this.all(name).map((v) => {
      if (typeof v === "number") return v;
      throw this.#wrong(name, "a number", v instanceof PrototxtMessage ? "a message" : JSON.stringify(v));
    });
  }

  /** A boolean field (true/false, also written as 1/0 or t/f); `fallback` when absent. */
  bool(name: string, fallback?: boolean): boolean | undefined {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v === "boolean") return v;
    if (v === 1 || v === 0) return v === 1;
    throw this.#wrong(name, "true or false", v instanceof PrototxtMessage ? "a message" : JSON.stringify(v));
  }

  #wrong(name: string, expected: string, got: string): DataError {
    const f = [...this.fields].reverse().find((x) => x.name === name);
    return new DataError(this.source, `field "${name}" to be ${expected}`, { line: f?.line, got });
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and parser

type Token =
  | { kind: "ident"; text: string; line: number }
  | { kind: "number"; value: number; text: string; line: number }
  | { kind: "string"; value: string; line: number }
  | { kind: "punct"; text: string; line: number }
  | { kind: "end"; line: number };

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "\\": "\\",
  "'": "'",
  '"': '"',
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "?": "?",
};

function tokenize(text: string, source: string): Token[] {
  const out: Token[] = [];
  let i = 0, line = 1;
  const n = text.length;
  const fail = (expected: string, got: string): never => {
    throw new DataError(source, expected, { line, got });
  };
  while (i < n) {
    const c = text[i];
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") i++;
    else if (c === "#") {
      while (i < n && text[i] !== "\n") i++;
    } else if (c === '"' || c === "'") {
      let s = "";
      i++;
      while (text[i] !== c) {
        if (i >= n || text[i] === "\n") {
          fail(`a closing ${c} for the string opened on this line`, "the line's end");
        }
        if (text[i] !== "\\") {
          s += text[i++];
          continue;
        }
        const e = text[i + 1];
        const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
        const hex = /^x([0-9a-fA-F]{1,2})/.exec(text.slice(i + 1, i + 4));
        if (e in ESCAPES) {
          s += ESCAPES[e];
          i += 2;
        } else if (oct) {
          s += String.fromCharCode(parseInt(oct[0], 8));
          i += 1 + oct[0].length;
        } else if (hex) {
          s += String.fromCharCode(parseInt(hex[1], 16));
          i += 1 + hex[0].length;
        } else fail("a known escape sequence", JSON.stringify(text.slice(i, i + 2)));
      }
      i++;
      out.push({ kind: "string", value: s, line });
    } else if ("{}[]:,;<>".includes(c)) {
      out.push({ kind: "punct", text: c, line });
      i++;
    } else if (/[-+0-9.]/.test(c)) {
      const m = /^[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?|inf(?:inity)?\b|nan\b)/i
        .exec(text.slice(i, i + 64));
      if (!m) fail("a number", JSON.stringify(text.slice(i, i + 16).split(/\s/)[0]));
      out.push({ kind: "number", value: parseNumber(m![0]), text: m![0], line });
      i += m![0].length;
    } else {
      const id = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(text.slice(i, i + 256));
      if (!id) fail("a field name, a value, or one of { } [ ] : , ;", JSON.stringify(c));
      out.push({ kind: "ident", text: id![0], line });
      i += id![0].length;
    }
  }
  out.push({ kind: "end", line });
  return out;
}

/** A number token's value: decimal or hex integers, floats with an optional f suffix, inf, nan. */
function parseNumber(raw: string): number {
  const sign = raw.startsWith("-") ? -1 : 1;
  const mag = raw.replace(/^[-+]/, "").toLowerCase();
  if (mag.startsWith("0x")) return sign * parseInt(mag.slice(2), 16);
  if (mag.startsWith("inf")) return sign * Infinity;
  if (mag === "nan") return NaN;
  return sign * Number(mag.replace(/f$/, ""));
}

function describe(t: Token): string {
  switch (t.kind) {
    case "end":
      return "the end of the file";
    case "string":
      return `the string ${JSON.stringify(t.value)}`;
    case "number":
      return t.text;
    default:
      return `"${t.text}"`;
  }
}

/** Parses protobuf text format into a message tree; errors name the file and line. */
export function parsePrototxt(text: string, source = "<prototxt>"): PrototxtMessage {
  const tokens = tokenize(text, source);
  let at = 0;
  const peek = () => tokens[at];
  const fail = (t: Token, expected: string): never => {
    throw new DataError(source, expected, { line: t.line, got: describe(t) });
  };
  const isPunct = (t: Token, p: string) => t.kind === "punct" && t.text === p;

  const scalar = (): { value: PrototxtScalar; quoted: boolean } => {
    const t = tokens[at++];
    if (t.kind === "number") return { value: t.value, quoted: false };
    if (t.kind === "string") {
      // Adjacent string literals concatenate, as in C.
      let value = t.value;
      for (let u = peek(); u.kind === "string"; u = peek()) {
        value += u.value;
        at++;
      }
      return { value, quoted: true };
    }
    if (t.kind === "ident") {
      if (/^(true|t)$/i.test(t.text)) return { value: true, quoted: false };
      if (/^(false|f)$/i.test(t.text)) return { value: false, quoted: false };
      if (/^(inf|infinity|nan)$/i.test(t.text)) return { value: parseNumber(t.text), quoted: false };
      return { value: t.text, quoted: false };
    }
    return fail(t, "a value (number, string or identifier)");
  };

  const body = (msg: PrototxtMessage, close: string | null) => {
    while (true) {
      const t = peek();
      if (close === null ? t.kind === "end" : isPunct(t, close)) {
        at++;
        return;
      }
      if (t.kind !== "ident") {
        fail(
          t,
          close === null
            ? "a field name"
            : `a field name or "${close}" closing the message opened at line ${msg.line}`,
        );
      }
      at++;
      const name = (t as { text: string }).text;
      let colon = false;
      if (isPunct(peek(), ":")) {
        colon = true;
        at++;
      }
      const v = peek();
      if (isPunct(v, "{") || isPunct(v, "<")) {
        at++;
        const sub = new PrototxtMessage(source, t.line);
        body(sub, (v as { text: string }).text === "{" ? "}" : ">");
        msg.fields.push({ name, value: sub, line: t.line });
      } else if (!colon) {
        fail(v, `":" or "{" after field "${name}"`);
      } else if (isPunct(v, "[")) {
        at++;
        if (isPunct(peek(), "]")) at++;
        else {
          while (true) {
            const s = scalar();
            msg.fields.push({ name, value: s.value, line: t.line, quoted: s.quoted });
            const sep = tokens[at++];
            if (isPunct(sep, "]")) break;
            if (!isPunct(sep, ",")) fail(sep, `"," or "]" in the list of field "${name}"`);
          }
        }
      } else {
        const s = scalar();
        msg.fields.push({ name, value: s.value, line: t.line, quoted: s.quoted });
      }
      if (isPunct(peek(), ",") || isPunct(peek(), ";")) at++;
    }
  };
  const root = new PrototxtMessage(source, 1);
  body(root, null);
  return root;
}

// ---------------------------------------------------------------------------------------------
// Caffe nets

/** Caffe's phases. */
export type CaffePhase = "TRAIN" | "TEST";

/** One layer of a Caffe net definition. */
export interface CaffeLayerDef {
  /** The layer's name ("" when the prototxt gives none, as some of the seed's data layers). */
  name: string;
  type: string;
  bottoms: string[];
  tops: string[];
  /** 1-based line of the layer in the file. */
  line: number;
  /** The whole layer message: every parameter, as written. */
  message: PrototxtMessage;
}

/** A Caffe net definition. */
export interface CaffeNetDef {
  name: string;
  source: string;
  /** Every layer, in file order, whatever its phase rules. */
  layers: CaffeLayerDef[];
  /** The root message (net-level fields such as input, input_shape, force_backward). */
  message: PrototxtMessage;
}

/** Reads a net definition: its `layer` entries (and the deprecated `layers`). */
export function parseCaffeNet(text: string, source = "<prototxt>"): CaffeNetDef {
  const root = parsePrototxt(text, source);
  const defs: CaffeLayerDef[] = [];
  for (const f of root.fields) {
    if (f.name !== "layer" && f.name !== "layers") continue;
    if (!(f.value instanceof PrototxtMessage)) {
      throw new DataError(source, `"${f.name}" to be a message { ... }`, { line: f.line });
    }
    const m = f.value;
    const type = m.get("type");
    if (type === undefined) throw new DataError(source, `layer to have a "type"`, { line: m.line });
    defs.push({
      name: m.string("name") ?? "",
      // The deprecated V1 `layers` write the type as an enum identifier (CONVOLUTION).
      type: String(type),
      bottoms: m.strings("bottom"),
      tops: m.strings("top"),
      line: m.line,
      message: m,
    });
  }
  return { name: root.string("name") ?? "", source, layers: defs, message: root };
}

/**
 * Whether a layer is part of the net in `phase`, by Caffe's rules: with `include` rules it must
 * meet one; with `exclude` rules it must meet none. Only the phase part of a rule is checked
 * (the seed uses no levels or stages).
 */
export function inPhase(layer: CaffeLayerDef, phase: CaffePhase): boolean {
  const meets = (rule: PrototxtMessage) => {
    const p = rule.get("phase");
    return p === undefined || p === phase || (phase === "TRAIN" ? p === 0 : p === 1);
  };
  const inc = layer.message.messages("include");
  if (inc.length) return inc.some(meets);
  return !layer.message.messages("exclude").some(meets);
}

/** The layers of `net` in `phase`, in file order. */
export function phaseLayers(net: CaffeNetDef, phase: CaffePhase): CaffeLayerDef[] {
  return net.layers.filter((l) => inPhase(l, phase));
}
