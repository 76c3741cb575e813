/**
 * Pictures of masks: the ASCII tile picture of a hand-worked case, merging of big tile maps,
 * well-formed SVG with the sparsity in its title, PNGs that decode to the expected size and colours.
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { decode } from "fast-png";
import { analyze } from "../../compiler/analysis/analyze.ts";
import {
  asciiTiles,
  coarsenTiles,
  densePanelSize,
  maskPng,
  maskSvg,
  pictureTitle,
} from "../../viz/mask_picture.ts";
import { classifyTiles, type TileMap } from "../../compiler/analysis/tiles.ts";
import { denseMask, phd, phdCswa } from "../../dsl/mod.ts";

Deno.test("ASCII picture of PHD K=2 L=3, grouped layout, 2x2 tiles (worked by hand)", () => {
  // Storage [o0 o1 | o2 h0 | h1 h2]: e.g. tile (2,0) is full (h1, h2 see o0 and o1).
  const map = classifyTiles(phd({ K: 2 }), { L: 3, tileQ: 2, tileK: 2, layout: "grouped" });
  const [head, ...rows] = asciiTiles(map).split("\n");
  assertEquals(rows, ["░░    ", "░░░░  ", "██░░░░"]);
  match(head, /^tile classes: grouped layout, 2x2 tiles, 3x3 grid over 6x6 pairs; sparsity /);
  match(head, /full 1, ░░ partial 5, empty 3\)$/);
});

/** A tile map with given classes (only the fields pictures read matter). */
function tileMap(rows: number, cols: number, classes: number[]): TileMap {
  const counts = { empty: 0, partial: 0, full: 0 };
  for (const c of classes) counts[(["empty", "partial", "full"] as const)[c]]++;
  return {
    layout: "interleaved",
    K: 1,
    L: rows,
    tileQ: 1,
    tileK: 1,
    rows,
    cols,
    classes: Uint8Array.from(classes),
    counts,
    keptFraction: 1 - counts.empty / classes.length,
  };
}

Deno.test("big tile maps are merged: same class kept, mixed cells partial", () => {
  const m = tileMap(4, 4, [2, 2, 0, 0, 2, 2, 0, 0, 2, 0, 1, 1, 2, 2, 1, 1]);
  const g = coarsenTiles(m, 2);
  assertEquals([g.rows, g.cols, g.block, [...g.classes]], [2, 2, 2, [2, 0, 1, 1]]);
  assertEquals(asciiTiles(m, { maxSide: 2 }).split("\n").slice(1), ["██  ", "░░░░"]);
  match(asciiTiles(m, { maxSide: 2 }), /shown as 2x2 cells of 2x2/);
  assertEquals(coarsenTiles(m, 4).classes, m.classes);
  // A long sequence: the picture comes from the analysis alone and stays 32 lines.
  const big = analyze(phdCswa(), { L: 50000, tile: 64 }).tiles;
  const lines = asciiTiles(big).split("\n");
  assertEquals(lines.length, 33);
  ok(lines.slice(1).every((l) => l.length === 64));
});

/** Checks that text is well-formed XML: balanced tags, quoted attributes, escaped text. */
function assertWellFormed(xml: string) {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    ok(!/&(?!(lt|gt|amp|quot|apos|#\d+);)/.test(text), `bad entity in ${text.slice(0, 40)}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    ok(m, `malformed tag at ${xml.slice(lt, lt + 60)}`);
    if (m[1]) assertEquals(stack.pop(), m[2]);
    else if (!m[4]) stack.push(m[2]);
    i = tag.lastIndex;
  }
  assertEquals(stack, []);
}

Deno.test("SVG: well-formed, title with the sparsity, both panels; big masks embed a PNG", () => {
  const spec = phdCswa({ K: 3, W: 4, C: 4 }), L = 10;
  const tiles = analyze(spec, { L, tile: 3 }).tiles;
  const pic = { name: spec.name, mask: denseMask(spec, L), tiles };
  const svg = maskSvg(pic);
  assertWellFormed(svg);
  ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
  const [t1, t2] = pictureTitle(pic);
  match(t2, new RegExp(`tiles keep ${(100 * tiles.keptFraction).toFixed(2)}% of pairs`));
  match(t2, /^allowed pairs \d+\.\d\d%/);
  ok(svg.includes(`<title>${t1}; ${t2}</title>`));
  ok(svg.includes("dense mask") && svg.includes("tile classes: grouped layout, 3x3"));
  ok(svg.includes('fill="#e8820c"') && svg.includes('fill="#2f5fae"')); // hidden and original keys

  const tilesOnly = maskSvg({ name: spec.name, tiles });
  assertWellFormed(tilesOnly);
  ok(!tilesOnly.includes("dense mask") && !tilesOnly.includes("allowed pairs"));

  const big = phd({ K: 3 }), N = 3 * 300;
  const bigSvg = maskSvg({
    name: big.name,
    mask: denseMask(big, 300),
    tiles: analyze(big, { L: 300 }).tiles,
  });
  assertWellFormed(bigSvg);
  const b64 = /href="data:image\/png;base64,([A-Za-z0-9+/=]+)"/.exec(bigSvg);
  ok(b64, "the big dense panel is an embedded PNG");
  const img = decode(Uint8Array.from(atob(b64[1]), (c) => c.charCodeAt(0)));
  assertEquals([img.width, img.height], [densePanelSize(N), densePanelSize(N)]);
});

Deno.test("PNG: decodes to the expected size, colours and title", () => {
  const spec = phd({ K: 2 }), L = 6;
  const tiles = analyze(spec, { L, tile: 1, layout: "interleaved" }).tiles;
  const pic = { name: spec.name, mask: denseMask(spec, L), tiles };
  const img = decode(maskPng(pic));
  // margin 16 | dense 12 pairs x 40 px | gap 32 | tiles 12 x 40 px | margin 16; title band 48
  assertEquals([img.width, img.height, img.channels, img.depth], [1024, 48 + 480 + 40, 3, 8]);
  assertEquals(img.text.Title, pictureTitle(pic).join("; "));
  const px = (
    x: number,
    y: number,
  ) => [...img.data.subarray((y * 1024 + x) * 3, (y * 1024 + x) * 3 + 3)];
  assertEquals(px(16 + 20, 48 + 20), [0x2f, 0x5f, 0xae]); // query o0 attends key o0
  assertEquals(px(16 + 60, 48 + 60), [0xe8, 0x82, 0x0c]); // query h0 attends key h0
  assertEquals(px(16 + 60, 48 + 20), [0xf0, 0xf0, 0xf4]); // o0 may not see h0: faint band
  assertEquals(px(16 + 480 + 32 + 20, 48 + 20), [0x1b, 0x78, 0x37]); // 1x1 tiles: full
  assertEquals(px(16 + 480 + 32 + 60, 48 + 20), [0xf7, 0xf7, 0xf7]); // empty

  const only = decode(maskPng({ name: spec.name, tiles }));
  assertEquals(only.height, 48 + 480 + 40);
  ok(!only.text.Title.includes("allowed pairs"));
  // Above 480 tokens the dense panel averages boxes of pairs down to about 480 pixels.
  assertEquals([densePanelSize(12), densePanelSize(480), densePanelSize(4095)], [480, 480, 455]);
});
