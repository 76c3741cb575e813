/**
 * Pictures of a mask: the tile-class map as an ASCII block picture (like FlexAttention's BlockMask
 * print), and two-panel SVG and PNG figures (the dense mask in canonical order, the tile classes
 * in storage order). Pure functions with no host API, so a browser can draw the same pictures.
 */
import { encode } from "fast-png";
import type { DenseMask } from "../dsl/eval.ts";
import { EMPTY, FULL, PARTIAL, type TileMap } from "../compiler/analysis/tiles.ts";
import { escapeXml } from "./xml.ts";
import { type Layout, storageIndex, tokenAt } from "../compiler/layout.ts";

/** A tile map shown at a coarser grain: each cell merges `block x block` tiles. */
export interface TileGrid {
  /** Cells down (query side). */
  rows: number;
  /** Cells across (key side). */
  cols: number;
  /** `classes[row * cols + col]`: the shared class of the merged tiles, PARTIAL when they differ. */
  classes: Uint8Array;
  /** Tiles per cell side (1: the map itself). */
  block: number;
}

/** Merges tiles so that neither side has more than `maxSide` cells (cells stay square). */
export function coarsenTiles(map: TileMap, maxSide: number): TileGrid {
  const block = Math.max(1, Math.ceil(Math.max(map.rows, map.cols) / maxSide));
  if (block === 1) return { rows: map.rows, cols: map.cols, classes: map.classes, block };
  const rows = Math.ceil(map.rows / block), cols = Math.ceil(map.cols / block);
  const classes = new Uint8Array(rows * cols);
  const seen = new Uint8Array(rows * cols); // 0: nothing merged yet
  for (let r = 0; r < map.rows; r++) {
    const gr = Math.floor(r / block);
    for (let c = 0; c < map.cols; c++) {
      const g = gr * cols + Math.floor(c / block), x = map.classes[r * map.cols + c];
      if (!seen[g]) {
        seen[g] = 1;
        classes[g] = x;
      } else if (classes[g] !== x) classes[g] = PARTIAL;
    }
  }
  return { rows, cols, classes, block };
}

/**
 * A dense mask (in any token order: its `tokens` say which) reordered into a layout's storage
 * order, rows and columns both: `interleaved` is the canonical order; for `grouped` the dense
 * panel shows what a kernel in that layout sees, the originals->hidden block one empty region
 * (paper Fig. 3).
 */
export function reorderMask(d: DenseMask, layout: Layout): DenseMask {
  const { K, L } = d, N = K * L;
  const at = new Int32Array(N); // canonical index -> index in d
  d.tokens.forEach(([c, p], i) => at[storageIndex("interleaved", K, L, c, p)] = i);
  const tokens = Array.from({ length: N }, (_, s) => tokenAt(layout, K, L, s));
  const from = tokens.map(([c, p]) => at[storageIndex("interleaved", K, L, c, p)]);
  const allowed = new Uint8Array(N * N);
  for (let i = 0; i < N; i++) {
    const row = from[i] * N;
    for (let j = 0; j < N; j++) allowed[i * N + j] = d.allowed[row + from[j]];
  }
  return { K, L, tokens, allowed };
}

/** Two characters per tile class, as FlexAttention prints a BlockMask. */
const TILE_GLYPHS: Readonly<Record<number, string>> = {
  [EMPTY]: "  ",
  [PARTIAL]: "░░",
  [FULL]: "██",
};

/**
 * The tile map as text: one header line (layout, tile size, grid, sparsity), then one line per
 * query tile (or merged cell) of `2 * cols` characters. Big maps are merged to `maxSide` cells.
 */
export function asciiTiles(map: TileMap, o: { maxSide?: number } = {}): string {
  const g = coarsenTiles(map, o.maxSide ?? 32), N = map.K * map.L;
  const merged = g.block > 1 ? `, shown as ${g.rows}x${g.cols} cells of ${g.block}x${g.block}` : "";
  const head = `tile classes: ${map.layout} layout, ${map.tileQ}x${map.tileK} tiles, ` +
    `${map.rows}x${map.cols} grid over ${N}x${N} pairs${merged}; ` +
    `sparsity ${pct(1 - map.keptFraction)} ` +
    `(██ full ${map.counts.full}, ░░ partial ${map.counts.partial}, empty ${map.counts.empty})`;
  const lines = [head];
  for (let r = 0; r < g.rows; r++) {
    let s = "";
    for (let c = 0; c < g.cols; c++) s += TILE_GLYPHS[g.classes[r * g.cols + c]];
    lines.push(s);
  }
  return lines.join("\n");
}

/** What a two-panel picture shows. */
export interface MaskPicture {
  /** The spec's name (with parameters). */
  name: string;
  /** The dense mask (canonical order); omit it for a tile-class panel only (long sequences). */
  mask?: DenseMask;
  /**
   * The token order of `mask`: `interleaved` (default) is the canonical order, `grouped` a mask
   * reordered by `reorderMask` (only the panel's label depends on it).
   */
  maskLayout?: Layout;
  /**
   * Most pixels per side of the dense panel's raster when the SVG embeds one (above 40000 runs):
   * default 480; a page that zooms passes K*L so every pair keeps its own pixel.
   */
  rasterSide?: number;
  /** The tile classes (storage order of their layout). */
  tiles: TileMap;
}

/** The two title lines of a picture: what it is, then how sparse it is. */
export function pictureTitle(p: MaskPicture): [string, string] {
  const t = p.tiles, N = t.K * t.L;
  const dense = p.mask ? `allowed pairs ${pct(density(p.mask))}, ` : "";
  return [
    `${p.name}: K=${t.K} L=${t.L} (${N} tokens)`,
    `${dense}tiles keep ${pct(t.keptFraction)} of pairs ` +
    `(${t.counts.full} full, ${t.counts.partial} partial, ${t.counts.empty} empty of ` +
    `${t.rows * t.cols}; ${t.layout} ${t.tileQ}x${t.tileK})`,
  ];
}

/** Fraction of allowed pairs. */
export function density(m: DenseMask): number {
  let n = 0;
  for (const x of m.allowed) n += x;
  return n / m.allowed.length;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

// Colours. Dense panel: forbidden cells are white, with a faint band on hidden rows and columns;
// allowed cells take the colour of the key's kind. Tile panel: one colour per class.
const RGB = (hex: string): [number, number, number] =>
  [0, 2, 4].map((i) => parseInt(hex.slice(1 + i, 3 + i), 16)) as [number, number, number];
const COLOURS = {
  white: "#ffffff",
  band1: "#f0f0f4", // forbidden, one side hidden
  band2: "#e2e2ea", // forbidden, both sides hidden
  original: "#2f5fae", // allowed, original key (and the original tick)
  hidden: "#e8820c", // allowed, hidden key (and the hidden tick)
  full: "#1b7837",
  partial: "#a6dba0",
  empty: "#f7f7f7",
  text: "#222222",
  grid: "#ffffff",
};
/** Dense panel colour by index (see `denseCell`). */
const DENSE = [COLOURS.white, COLOURS.band1, COLOURS.band2, COLOURS.original, COLOURS.hidden];
/** Tile panel colour by class. */
const TILE = { [EMPTY]: COLOURS.empty, [PARTIAL]: COLOURS.partial, [FULL]: COLOURS.full };

function denseCell(m: DenseMask, qi: number, ki: number): number {
  const N = m.tokens.length, qh = m.tokens[qi][0] > 0, kh = m.tokens[ki][0] > 0;
  if (m.allowed[qi * N + ki]) return kh ? 4 : 3;
  return (qh ? 1 : 0) + (kh ? 1 : 0);
}

/** Legend entries (colour, label) of a picture. */
function legend(p: MaskPicture): [string, string][] {
  const keys: [string, string][] = p.mask
    ? [[COLOURS.original, "original key"], [COLOURS.hidden, "hidden key"]]
    : [];
  return [
    ...keys,
    [TILE[FULL], "full tile"],
    [TILE[PARTIAL], "partial tile"],
    [TILE[EMPTY], "empty tile"],
  ];
}

/** Panel edge in pixels (SVG user units) that both panels aim for. */
const PANEL = 480;
/** Beyond this many rectangles the SVG embeds the dense panel as a PNG image instead. */
const MAX_RECTS = 40000;

/**
 * A standalone SVG: title lines with the sparsity, the dense mask (query rows, key columns, tick
 * strips coloured by original/hidden) and the tile-class map, each with a legend.
 */
export function maskSvg(p: MaskPicture): string {
  const [t1, t2] = pictureTitle(p), m = 20, top = 76;
  const panels: string[] = [];
  let x = m + 10;
  const label = (x: number, s: string) =>
    `<text x="${x}" y="${top - 14}" font-size="12" fill="${COLOURS.text}">${escapeXml(s)}</text>`;
  if (p.mask) {
    const order = p.maskLayout === "grouped"
      ? "grouped order [originals | hidden]"
      : "canonical order p*K+c";
    panels.push(label(x, `dense mask: query rows, key columns, ${order}`));
    panels.push(denseSvg(p.mask, x, top, p.rasterSide));
    x += PANEL + 40;
  }
  const g = coarsenTiles(p.tiles, 256), tile = p.tiles;
  const merged = g.block > 1 ? `, cells of ${g.block}x${g.block} tiles` : "";
  panels.push(
    label(x, `tile classes: ${tile.layout} layout, ${tile.tileQ}x${tile.tileK}${merged}`),
  );
  panels.push(tilesSvg(g, x, top));
  const width = x + PANEL + m, ly = top + PANEL + 26;
  const items = legend(p).map(([c, s], i) =>
    `<rect x="${m + 10 + i * 130}" y="${ly - 10}" width="12" height="12" fill="${c}" ` +
    `stroke="#999" stroke-width="0.5"/><text x="${m + 28 + i * 130}" y="${ly}" font-size="12" ` +
    `fill="${COLOURS.text}">${escapeXml(s)}</text>`
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${ly + 16}" ` +
    `viewBox="0 0 ${width} ${ly + 16}" font-family="sans-serif">`,
    `<title>${escapeXml(`${t1}; ${t2}`)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${m}" y="22" font-size="15" font-weight="bold" fill="${COLOURS.text}">${
      escapeXml(t1)
    }</text>`,
    `<text x="${m}" y="42" font-size="12" fill="${COLOURS.text}">${escapeXml(t2)}</text>`,
    ...panels,
    ...items,
    `</svg>`,
  ].join("\n");
}

/** The dense panel: horizontal runs of one colour as rectangles, or an embedded PNG if too many. */
function denseSvg(d: DenseMask, x: number, y: number, rasterSide = PANEL): string {
  const N = d.tokens.length, s = PANEL / N;
  const rects: string[] = [];
  for (let qi = 0; qi < N && rects.length <= MAX_RECTS; qi++) {
    for (let ki = 0; ki < N;) {
      const c = denseCell(d, qi, ki);
      let e = ki + 1;
      while (e < N && denseCell(d, qi, e) === c) e++;
      if (c !== 0) {
        rects.push(`<rect x="${ki}" y="${qi}" width="${e - ki}" height="1" fill="${DENSE[c]}"/>`);
      }
      ki = e;
    }
  }
  const body = rects.length <= MAX_RECTS ? rects.join("") : `<image width="${N}" height="${N}" ` +
    `style="image-rendering:pixelated" preserveAspectRatio="none" ` +
    `href="data:image/png;base64,${
      base64(encode({ ...denseRaster(d, densePanelSize(N, rasterSide)), channels: 3, depth: 8 }))
    }"/>`;
  // Tick strips (one mark per run of tokens of one kind) keep a fixed width outside the grid;
  // drawn in token units, so their edges round like the panel's (no hairline gaps when zoomed).
  const top: string[] = [], left: string[] = [];
  for (let t = 0; t < N;) {
    const hidden = d.tokens[t][0] > 0, c = hidden ? COLOURS.hidden : COLOURS.original;
    let e = t + 1;
    while (e < N && d.tokens[e][0] > 0 === hidden) e++;
    top.push(`<rect x="${t}" y="-7" width="${e - t}" height="5" fill="${c}"/>`);
    left.push(`<rect x="-7" y="${t}" width="5" height="${e - t}" fill="${c}"/>`);
    t = e;
  }
  const ticks = [
    `<g transform="scale(${s},1)">${top.join("")}</g>`,
    `<g transform="scale(1,${s})">${left.join("")}</g>`,
  ];
  return `<g transform="translate(${x},${y})" shape-rendering="crispEdges">${ticks.join("")}` +
    `<rect width="${PANEL}" height="${PANEL}" fill="#ffffff" stroke="#999" stroke-width="0.5"/>` +
    `<g transform="scale(${s})">${body}</g></g>`;
}

/** The tile panel: one rectangle per cell (white grid lines when cells are big enough). */
function tilesSvg(g: TileGrid, x: number, y: number): string {
  const s = PANEL / Math.max(g.rows, g.cols), stroke = s >= 6 ? ` stroke="${COLOURS.grid}"` : "";
  const rects: string[] = [];
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols;) {
      const k = g.classes[r * g.cols + c];
      let e = c + 1;
      while (!stroke && e < g.cols && g.classes[r * g.cols + e] === k) e++;
      rects.push(
        `<rect x="${c}" y="${r}" width="${e - c}" height="1" fill="${TILE[k as 0 | 1 | 2]}"/>`,
      );
      c = e;
    }
  }
  return `<g transform="translate(${x},${y}) scale(${s},${s})" shape-rendering="crispEdges"${
    stroke ? `${stroke} stroke-width="${1 / s}"` : ""
  }>${rects.join("")}</g>`;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** An RGB raster being drawn. */
interface Raster {
  width: number;
  height: number;
  data: Uint8Array;
}

function raster(width: number, height: number): Raster {
  return { width, height, data: new Uint8Array(width * height * 3).fill(255) };
}

function fill(img: Raster, x: number, y: number, w: number, h: number, hex: string) {
  const [r, g, b] = RGB(hex);
  for (let yy = Math.max(0, y); yy < Math.min(img.height, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(img.width, x + w); xx++) {
      const i = (yy * img.width + xx) * 3;
      img.data[i] = r;
      img.data[i + 1] = g;
      img.data[i + 2] = b;
    }
  }
}

/**
 * Pixels per side of the dense panel of N tokens: whole pixels per pair up to `max` (default 480,
 * so periodic patterns never alias), else square boxes of pairs, each pixel the average colour of
 * its box.
 */
export function densePanelSize(N: number, max = PANEL): number {
  return N <= max ? N * Math.floor(max / N) : Math.ceil(N / Math.ceil(N / max));
}

/** Box-averages per-cell colours onto `size` pixels per side (or repeats them when enlarging). */
function resample(
  n: [number, number],
  size: [number, number],
  colour: (y: number, x: number) => [number, number, number],
): Raster {
  const img = raster(size[1], size[0]);
  const by = Math.ceil(n[0] / size[0]), bx = Math.ceil(n[1] / size[1]); // cells per pixel
  const sy = Math.max(1, size[0] / n[0]), sx = Math.max(1, size[1] / n[1]); // pixels per cell
  const sum = new Float64Array(size[0] * size[1] * 4);
  for (let y = 0; y < n[0]; y++) {
    for (let x = 0; x < n[1]; x++) {
      const i = (Math.floor(y / by) * size[1] + Math.floor(x / bx)) * 4, c = colour(y, x);
      sum[i] += c[0];
      sum[i + 1] += c[1];
      sum[i + 2] += c[2];
      sum[i + 3]++;
    }
  }
  for (let y = 0; y < size[0]; y++) {
    for (let x = 0; x < size[1]; x++) {
      const i = (Math.floor(y / sy) * size[1] + Math.floor(x / sx)) * 4;
      for (let k = 0; k < 3; k++) {
        img.data[(y * size[1] + x) * 3 + k] = Math.round(sum[i + k] / sum[i + 3]);
      }
    }
  }
  return img;
}

/** The dense panel: `size` pixels per side (see `densePanelSize`). */
function denseRaster(d: DenseMask, size: number): Raster {
  const N = d.tokens.length, palette = DENSE.map(RGB);
  return resample([N, N], [size, size], (qi, ki) => palette[denseCell(d, qi, ki)]);
}

/** The tick strip along the dense panel: one row of `size` pixels, original/hidden colours. */
function tickRaster(d: DenseMask, size: number): Raster {
  const o = RGB(COLOURS.original), h = RGB(COLOURS.hidden);
  return resample([1, d.tokens.length], [1, size], (_, t) => d.tokens[t][0] > 0 ? h : o);
}

/**
 * A PNG (RGB, 8 bit): the two title lines drawn in a small pixel font, the dense panel (with
 * tick strips) and the tile panel, and a legend; the title also goes in the PNG `Title` text chunk.
 */
export function maskPng(p: MaskPicture): Uint8Array {
  const [t1, t2] = pictureTitle(p), m = 16, top = 48, gap = 32;
  const N = p.tiles.K * p.tiles.L;
  const D = p.mask ? densePanelSize(N) : 0;
  const g = coarsenTiles(p.tiles, PANEL);
  const ts = Math.max(1, Math.floor(Math.max(D, PANEL) / Math.max(g.rows, g.cols)));
  const T = Math.max(g.rows, g.cols) * ts;
  const width = Math.max(m + (D ? D + gap : 0) + T + m, m + 8 * Math.max(t1.length, t2.length) + m);
  const height = top + Math.max(D, T) + 40;
  const img = raster(width, height);
  text(img, m, 8, t1, COLOURS.text);
  text(img, m, 24, t2, COLOURS.text);
  let x = m;
  if (p.mask) {
    const d = denseRaster(p.mask, D), ticks = tickRaster(p.mask, D);
    for (let yy = 0; yy < D; yy++) {
      img.data.set(d.data.subarray(yy * D * 3, (yy + 1) * D * 3), ((top + yy) * width + x) * 3);
      for (let k = 0; k < 4; k++) {
        img.data.set(ticks.data.subarray(yy * 3, yy * 3 + 3), ((top + yy) * width + x - 6 + k) * 3);
        img.data.set(ticks.data.subarray(yy * 3, yy * 3 + 3), ((top - 6 + k) * width + x + yy) * 3);
      }
    }
    x += D + gap;
  }
  for (let r = 0; r < g.rows; r++) {
    for (let c = 0; c < g.cols; c++) {
      const k = g.classes[r * g.cols + c] as 0 | 1 | 2, grid = ts >= 6 ? 1 : 0;
      fill(img, x + c * ts, top + r * ts, ts - grid, ts - grid, TILE[k]);
    }
  }
  let lx = m;
  const ly = top + Math.max(D, T) + 16;
  for (const [c, s] of legend(p)) {
    fill(img, lx, ly, 10, 10, "#999999");
    fill(img, lx + 1, ly + 1, 8, 8, c);
    text(img, lx + 14, ly, s, COLOURS.text);
    lx += 14 + 8 * s.length + 16;
  }
  return encode({
    width,
    height,
    data: img.data,
    channels: 3,
    depth: 8,
    text: { Title: `${t1}; ${t2}` },
  });
}

// A 3x5 pixel font (rows top to bottom, 3 bits each), drawn at 2x: enough for titles and legends.
const FONT: Record<string, string> = {
  "0": "111101101101111",
  "1": "010110010010111",
  "2": "111001111100111",
  "3": "111001111001111",
  "4": "101101111001001",
  "5": "111100111001111",
  "6": "111100111101111",
  "7": "111001001010010",
  "8": "111101111101111",
  "9": "111101111001111",
  A: "010101111101101",
  B: "110101110101110",
  C: "011100100100011",
  D: "110101101101110",
  E: "111100110100111",
  F: "111100110100100",
  G: "011100101101011",
  H: "101101111101101",
  I: "111010010010111",
  J: "001001001101010",
  K: "101101110101101",
  L: "100100100100111",
  M: "101111111101101",
  N: "110101101101101",
  O: "010101101101010",
  P: "110101110100100",
  Q: "010101101110011",
  R: "110101110101101",
  S: "011100010001110",
  T: "111010010010010",
  U: "101101101101111",
  V: "101101101101010",
  W: "101101111111101",
  X: "101101010101101",
  Y: "101101010010010",
  Z: "111001010100111",
  " ": "000000000000000",
  ".": "000000000000010",
  ",": "000000000010100",
  ":": "000010000010000",
  ";": "000010000010100",
  "%": "101001010100101",
  "=": "000111000111000",
  "-": "000000111000000",
  "_": "000000000000111",
  "+": "000010111010000",
  "*": "000101010101000",
  "(": "001010010010001",
  ")": "100010010010100",
  "/": "001001010100100",
  "?": "111001010000010",
};

/** Draws text (upper-cased) at 2x scale, 8 pixels per character. */
function text(img: Raster, x: number, y: number, s: string, hex: string) {
  for (const ch of s.toUpperCase()) {
    const bits = FONT[ch] ?? FONT["?"];
    for (let i = 0; i < 15; i++) {
      if (bits[i] === "1") fill(img, x + (i % 3) * 2, y + Math.floor(i / 3) * 2, 2, 2, hex);
    }
    x += 8;
  }
}
