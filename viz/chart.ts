/**
 * Charts as standalone SVG text: line charts (loss curves, benchmark sweeps: one polyline per
 * series, a legend) and bar charts (one bar per arm, optional error bars), on one frame of axes
 * with ticks. Pure string building, so a browser can reuse it.
 */
import { escapeXml } from "./xml.ts";

/** One line of a chart. */
export interface Series {
  /** Legend text. */
  name: string;
  /** `[x, y]` points in drawing order; non-finite ones are skipped. */
  points: [number, number][];
  /** CSS stroke color. Default: the palette color of its index. */
  color?: string;
}

/** Options of `lineChart`. */
export interface ChartOptions {
  /** Title above the chart. */
  title: string;
  /** Label of the x axis. */
  xLabel: string;
  /** Label of the y axis. */
  yLabel: string;
  /** Width in pixels. Default 640. */
  width?: number;
  /** Height in pixels. Default 400. */
  height?: number;
  /** Logarithmic x axis (sweeps over sizes). */
  logX?: boolean;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(+v.toPrecision(12));
  }
  return out;
}

/** A chart's canvas: size, margins and the y scale (value to pixel). */
interface Frame {
  W: number;
  H: number;
  m: { l: number; r: number; t: number; b: number };
  sy: (y: number) => number;
}

/** The opening of a chart: the svg element, a white background, the title, the y grid and labels. */
function frameStart(f: Frame, title: string, y0: number, y1: number): string[] {
  const { W, H, m, sy } = f;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (const v of ticks(y0, y1)) {
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`,
      `<text x="${m.l - 6}" y="${sy(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  return out;
}

/** The two axes, the x label when there is one, and the y label. */
function frameAxes({ W, H, m }: Frame, yLabel: string, xLabel?: string): string[] {
  const x = xLabel === undefined ? [] : [
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${
      escapeXml(xLabel)
    }</text>`,
  ];
  return [
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`,
    ...x,
    `<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(yLabel)
    }</text>`,
  ];
}

/** Renders series as an SVG line chart. */
export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 640, H = o.height ?? 400, m = { l: 64, r: 16, t: 36, b: 48 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) =>
    Number.isFinite(x) && Number.isFinite(y)
  );
  if (pts.length === 0) throw new RangeError(`chart "${o.title}" has no finite points`);
  const fx = o.logX ? Math.log10 : (x: number) => x;
  let [x0, x1] = [Math.min(...pts.map((p) => fx(p[0]))), Math.max(...pts.map((p) => fx(p[0])))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const sx = (x: number) => m.l + (fx(x) - x0) / (x1 - x0) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b);
  const f: Frame = { W, H, m, sy };
  const out = frameStart(f, o.title, y0, y1);
  const xt = o.logX ? ticks(x0, x1).filter(Number.isInteger).map((e) => 10 ** e) : ticks(x0, x1);
  for (const v of xt) {
    out.push(`<text x="${sx(v)}" y="${H - m.b + 16}" text-anchor="middle">${v}</text>`);
  }
  out.push(...frameAxes(f, o.yLabel, o.xLabel));
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const d = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${d}"/>`,
      `<rect x="${W - m.r - 150}" y="${m.t + 4 + i * 16}" width="10" height="10" fill="${color}"/>`,
      `<text x="${W - m.r - 135}" y="${m.t + 13 + i * 16}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n");
}

/** One bar of `barChart`: a value and, optionally, its spread (drawn as an error bar of ±err). */
export interface Bar {
  name: string;
  value: number;
  err?: number;
  color?: string;
}

/** Renders bars (one per name, labels under them, the axis fitted to value ± err) as SVG. */
export function barChart(bars: Bar[], o: Omit<ChartOptions, "logX">): string {
  const W = o.width ?? 640, H = o.height ?? 400, m = { l: 64, r: 16, t: 36, b: 96 };
  const ok = bars.filter((b) => Number.isFinite(b.value));
  if (ok.length === 0) throw new RangeError(`chart "${o.title}" has no finite bars`);
  const lo = Math.min(...ok.map((b) => b.value - (b.err ?? 0)));
  const hi = Math.max(...ok.map((b) => b.value + (b.err ?? 0)));
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.15;
  const [y0, y1] = [lo - pad, hi + pad];
  const sy = (y: number) => H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b);
  const slot = (W - m.l - m.r) / ok.length, bw = slot * 0.6;
  const f: Frame = { W, H, m, sy };
  const out = frameStart(f, o.title, y0, y1);
  ok.forEach((b, i) => {
    const x = m.l + i * slot + (slot - bw) / 2, color = b.color ?? PALETTE[i % PALETTE.length];
    const top = sy(b.value), cx = x + bw / 2;
    out.push(
      `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${
        (H - m.b - top).toFixed(1)
      }" fill="${color}" opacity="0.8"/>`,
      `<text transform="translate(${cx.toFixed(1)} ${H - m.b + 10}) rotate(35)" font-size="11">${
        escapeXml(b.name)
      }</text>`,
    );
    if (b.err) {
      const [a, z] = [sy(b.value - b.err), sy(b.value + b.err)];
      out.push(
        `<line x1="${cx}" x2="${cx}" y1="${a.toFixed(1)}" y2="${z.toFixed(1)}" stroke="black"/>`,
        `<line x1="${cx - 5}" x2="${cx + 5}" y1="${a.toFixed(1)}" y2="${
          a.toFixed(1)
        }" stroke="black"/>`,
        `<line x1="${cx - 5}" x2="${cx + 5}" y1="${z.toFixed(1)}" y2="${
          z.toFixed(1)
        }" stroke="black"/>`,
      );
    }
  });
  out.push(...frameAxes(f, o.yLabel), "</svg>");
  return out.join("\n");
}
