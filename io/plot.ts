/**
 * Line charts as standalone SVG (training curves: losses and errors against iterations). Each
 * panel has its own y axis; a log scale suits losses that fall over decades.
 * @module
 */

/** One line of a panel. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
}

/** One chart panel. */
export interface Panel {
  title: string;
  series: readonly Series[];
  /** Logarithmic y axis (positive values only). */
  logY?: boolean;
  yLabel?: string;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceTicks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(v);
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

/** Renders panels stacked vertically into one SVG document. */
export function linePlotSvg(
  panels: readonly Panel[],
  opts: { width?: number; panelHeight?: number; title?: string } = {},
): string {
  const W = opts.width ?? 720, PH = opts.panelHeight ?? 240;
  const top = opts.title ? 30 : 8;
  const H = top + panels.length * PH;
  const m = { l: 64, r: 150, t: 28, b: 34 };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  if (opts.title) {
    parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  }
  panels.forEach((p, k) => {
    const y0 = top + k * PH;
    const pw = W - m.l - m.r, ph = PH - m.t - m.b;
    const pts = p.series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!p.logY || y > 0));
    parts.push(`<text x="${m.l}" y="${y0 + 16}" font-size="12" font-weight="bold">${esc(p.title)}</text>`);
    if (pts.length === 0) {
      parts.push(
        `<text x="${m.l + pw / 2}" y="${y0 + PH / 2}" text-anchor="middle" fill="#888">no data yet</text>`,
      );
      return;
    }
    const xs = pts.map(([x]) => x);
    const x1 = Math.min(...xs);
    let x2 = Math.max(...xs);
    if (x2 === x1) x2 = x1 + 1;
    const tf = (v: number) => (p.logY ? Math.log10(v) : v);
    const ys = pts.map(([, y]) => tf(y));
    let ya = Math.min(...ys), yb = Math.max(...ys);
    if (yb === ya) {
      ya -= 0.5;
      yb += 0.5;
    }
    const pad = 0.05 * (yb - ya);
    ya -= pad;
    yb += pad;
    if (!p.logY && Math.min(...pts.map(([, y]) => y)) >= 0) ya = Math.max(ya, 0);
    const X = (x: number) => m.l + ((x - x1) / (x2 - x1)) * pw;
    const Y = (y: number) => y0 + m.t + (1 - (tf(y) - ya) / (yb - ya)) * ph;
    parts.push(`<rect x="${m.l}" y="${y0 + m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    for (const t of niceTicks(x1, x2, 6)) {
      parts.push(
        `<line x1="${X(t)}" y1="${y0 + m.t + ph}" x2="${X(t)}" y2="${y0 + m.t + ph + 4}" stroke="#999"/>`,
        `<text x="${X(t)}" y="${y0 + m.t + ph + 16}" text-anchor="middle">${fmt(t)}</text>`,
      );
    }
    const yTicks = p.logY
      ? niceTicks(Math.floor(ya), Math.ceil(yb), 5).filter((e) => e >= ya && e <= yb).map((e) =>
        Math.pow(10, e)
      )
      : niceTicks(ya, yb, 5);
    for (const t of yTicks) {
      parts.push(
        `<line x1="${m.l}" y1="${Y(t)}" x2="${m.l + pw}" y2="${Y(t)}" stroke="#eee"/>`,
        `<text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`,
      );
    }
    parts.push(
      `<text x="${m.l + pw / 2}" y="${y0 + PH - 4}" text-anchor="middle" fill="#555">iteration</text>`,
    );
    if (p.yLabel) {
      parts.push(
        `<text transform="translate(14 ${y0 + m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#555">${
          esc(p.yLabel)
        }</text>`,
      );
    }
    p.series.forEach((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length];
      const good = s.points.filter(([, y]) => Number.isFinite(y) && (!p.logY || y > 0));
      if (good.length) {
        const d = good.map(([x, y], j) => `${j ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
        parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
        if (good.length === 1) {
          parts.push(`<circle cx="${X(good[0][0])}" cy="${Y(good[0][1])}" r="2.5" fill="${color}"/>`);
        }
      }
      const ly = y0 + m.t + 10 + i * 16;
      parts.push(
        `<line x1="${m.l + pw + 10}" y1="${ly}" x2="${
          m.l + pw + 28
        }" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
        `<text x="${m.l + pw + 32}" y="${ly + 4}">${esc(s.name)}</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}
