/**
 * Figures across suites, drawn from their results.json (`deno task experiment --figures`), training
 * nothing. `fig1.svg` is this project's version of the paper's Fig. 1: at a fixed token budget, the
 * final validation bits per byte of Brown against K = 1, 2, 3, 5 (k-sweep: vanilla and PHD-CSWA),
 * and for each reasoning task the greedy exact-match accuracy against the same K, each bar the mean
 * over seeds with ± one standard deviation; one panel per suite, side by side in one SVG.
 */
import { join } from "node:path";
import { barChart } from "../../viz/chart.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";
import type { SuiteResults } from "./report.ts";

/** The arms of Fig. 1, by K: each suite drawn names its arms so. */
const FIG1_ARMS: readonly [number, string][] = [
  [1, "vanilla"],
  [2, "phd-cswa K=2"],
  [3, "phd-cswa K=3"],
  [5, "phd-cswa K=5"],
];

/** The panels of Fig. 1: a suite and the metric drawn from it. */
const FIG1_PANELS = [
  { suite: "k-sweep", metric: "val_bpb", title: "Brown: validation bits/byte" },
  { suite: "reasoning", metric: "accuracy", title: "addition: accuracy %" },
  { suite: "reasoning-parity", metric: "accuracy", title: "parity: accuracy %" },
  { suite: "reasoning-copy", metric: "accuracy", title: "delayed copy: accuracy %" },
] as const;

const PANEL = { width: 420, height: 320 };

/** One panel: the suite's Fig. 1 arms as bars by K (mean ± sd over seeds). */
function panel(r: SuiteResults, p: (typeof FIG1_PANELS)[number]): string {
  const bars = FIG1_ARMS.map(([K, name]) => {
    const a = r.arms.find((x) => x.arm === name);
    if (!a) throw new Error(`${r.suite}/results.json has no arm "${name}" (Fig. 1 needs K = ${K})`);
    const [m, s] = p.metric === "val_bpb"
      ? [a.val_bpb_mean, a.val_bpb_sd]
      : [100 * a.accuracy_mean!, 100 * a.accuracy_sd!];
    return { name: `K=${K}`, value: m, err: s };
  });
  const tokens = r.arms.find((x) => x.arm === "vanilla")!.tokens;
  return barChart(bars, {
    title: `${p.title}, ${(tokens / 1e6).toPrecision(3)} M tokens, ${r.seeds.length} seeds`,
    xLabel: "K",
    yLabel: p.metric === "val_bpb" ? "bits per byte (± sd)" : "accuracy % (± sd)",
    ...PANEL,
  });
}

/** Panels side by side, two a row, in one SVG (each panel a nested svg). */
function grid(panels: string[]): string {
  const cols = Math.min(2, panels.length), rows = Math.ceil(panels.length / cols);
  const W = cols * PANEL.width, H = rows * PANEL.height;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">`,
    ...panels.map((svg, i) =>
      `<g transform="translate(${(i % cols) * PANEL.width} ${
        Math.floor(i / cols) * PANEL.height
      })">` +
      `${svg}</g>`
    ),
    "</svg>",
    "",
  ].join("\n");
}

/**
 * Draws fig1.svg into `root` (experiments/results) from the suites' results.json there; a suite
 * without results is left out and named in the returned list. Throws when none has results.
 */
export async function drawFigures(root: string): Promise<{ wrote: string; missing: string[] }> {
  const panels: string[] = [], missing: string[] = [];
  for (const p of FIG1_PANELS) {
    let r: SuiteResults;
    try {
      r = JSON.parse(await Deno.readTextFile(join(root, p.suite, "results.json")));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing.push(p.suite);
      continue;
    }
    panels.push(panel(r, p));
  }
  if (panels.length === 0) {
    throw new Error(
      `--figures needs results.json of ${FIG1_PANELS.map((p) => p.suite).join(", ")} under ` +
        `${root}: run those suites first`,
    );
  }
  const wrote = join(root, "fig1.svg");
  await writeFileAtomic(wrote, grid(panels));
  return { wrote, missing };
}
