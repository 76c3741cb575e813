/**
 * The playground in headless Chromium (tests/fixtures/browser.ts; SwiftShader without a GPU):
 * the bundle's size, the page's compile time (analysis and pictures) and its fused attention
 * forward + backward against the float64 reference at several L, and generation from a checkpoint
 * trained by `deno task train` (the same tiny model as tests/web/page_test.ts), in the page and
 * with `deno task generate` on this machine's Deno adapter, greedy tokens compared; and a short
 * training run of the page's own tiny model.
 *
 *   deno task bench web [--json] [--write] [--screenshot FILE.png]
 *
 * `--write` replaces the "Browser playground" section of bench/RESULTS.md; `--screenshot` saves
 * the page (after the runs) as a PNG, the README's picture.
 */
import { bundle } from "../web/build.ts";
import {
  cliGreedy,
  compileSpec,
  generateInPage,
  openPlayground,
  runAttention,
  trainInPage,
} from "../tests/fixtures/browser.ts";
import { writeResults } from "./results.ts";
import { DEFAULT_SPEC } from "../web/examples.ts";

/** Sequence lengths of the attention runs (phd_cswa K = 3, so 3L tokens). */
const LENGTHS = [64, 256, 1024];
const PROMPT = "The jury said", NEW_TOKENS = 40, TRAIN_STEPS = 30;

export async function main(args: string[]): Promise<void> {
  const json = args.includes("--json"), write = args.includes("--write");
  const shotAt = args.indexOf("--screenshot");
  const shot = shotAt >= 0 ? args[shotAt + 1] : undefined;
  if (shotAt >= 0 && !shot?.endsWith(".png")) {
    console.error("error: --screenshot needs a FILE.png");
    Deno.exit(1);
  }
  const dir = await Deno.makeTempDir({ prefix: "bench_web_" });
  const built = await bundle();
  const { checkpoint: ckpt, report: want } = await cliGreedy(dir, PROMPT, NEW_TOKENS);
  const pg = await openPlayground({ viewport: { width: 1280, height: 900 } });
  const rows: Record<string, number | string>[] = [];
  let gen, first, training;
  let adapter = "";
  try {
    const { page } = pg;
    await page.waitForSelector("#spec-section[data-compiled]", { timeout: 60_000 });
    const source = DEFAULT_SPEC; // what the editor starts with
    for (const L of LENGTHS) {
      const c = await compileSpec(page, source, { L });
      if (!c.compiled) throw new Error(`compile failed at L=${L}: ${c.error}`);
      const compileMs = Number(await page.getAttribute("#spec-section", "data-compile-ms"));
      const r = await runAttention(page);
      adapter = (await page.textContent("#adapter")) ?? "";
      const timing = (await page.textContent("#run-timing")) ?? "";
      rows.push({
        L,
        tokens: 3 * L,
        compile_ms: Math.round(compileMs),
        fwd_bwd_ms: +r.warmMs.toFixed(1),
        first_run_ms: Number(timing.match(/first run ([\d.]+) ms/)?.[1]),
        reference_ms: Number(timing.match(/float64 reference ([\d.]+) ms/)?.[1]),
        matches: r.ok,
      });
    }
    await compileSpec(page, source, { L: 64 });
    first = await generateInPage(page, {
      checkpoint: ckpt,
      prompt: PROMPT,
      maxNewTokens: NEW_TOKENS,
    });
    gen = await generateInPage(page, { prompt: PROMPT, maxNewTokens: NEW_TOKENS }); // warm
    training = await trainInPage(page, TRAIN_STEPS);
    if (shot) {
      await page.screenshot({ path: shot, fullPage: true });
    }
  } finally {
    await pg.close();
    await Deno.remove(dir, { recursive: true });
  }
  const same = [first, gen].every((g) => JSON.stringify(g!.tokens) === JSON.stringify(want.tokens));
  const size = (name: string) => built.files.find((f) => f.path.endsWith(`/${name}`))!;
  const report = {
    adapter: adapter.replace(/^WebGPU adapter: /, ""),
    bundle: built.files.filter((f) => f.path.endsWith(".js")),
    attention: rows,
    generation: {
      page: { ...gen, tokens: undefined, first_prefill_ms: first!.prefillMs },
      cli: {
        adapter: want.adapter,
        prefill_ms: want.prefill_ms,
        decode_tokens_per_s: want.decode_tokens_per_s,
        kv_cache_bytes: want.kv_cache_bytes,
      },
      greedy_tokens_equal: same,
    },
    training: training!,
  };
  if (json) {
    console.log(JSON.stringify(report));
    return;
  }
  const kib = (n: number) => (n / 1024).toFixed(1);
  const md = [
    `## Browser playground (headless Chromium)`,
    ``,
    `Command: \`npx --yes deno@2.9.6 task bench web\`. Browser: Debian's Chromium, headless, WebGPU`,
    `on ${report.adapter} (CPU, no GPU), driven by playwright-core; the same 2-core machine as`,
    `above. Bundle: \`deno task bundle\` (esbuild, not minified).`,
    ``,
    `| file | KiB | gzip KiB |`,
    `| ---- | --- | -------- |`,
    ...["core.js", "app.js"].map((n) =>
      `| ${n} | ${kib(size(n).bytes)} | ${kib(size(n).gzipBytes)} |`
    ),
    ``,
    `Attention: the page's default spec (phd_cswa, K = 3, W = 16, C = 32), grouped layout, 2 heads,`,
    `d = 32. "compile" is one compile in the page (TypeScript to spec, analysis, dense mask and`,
    `pictures in both layouts, WGSL); forward + backward is the median of 3 warm runs including upload`,
    `and readback; the first run at L = 64 builds the pipelines, which the longer runs reuse (L, W`,
    `and C travel in uniforms); the float64 reference runs in the page's JavaScript. Other jobs`,
    `shared the two cores: single runs vary up to 2x (a first run can come out below the warm median).`,
    ``,
    `| L | tokens | compile ms | fwd+bwd ms | first run ms | reference ms | matches reference |`,
    `| - | ------ | ---------- | ---------- | ------------ | ------------ | ----------------- |`,
    ...rows.map((r) =>
      `| ${r.L} | ${r.tokens} | ${r.compile_ms} | ${r.fwd_bwd_ms} | ${r.first_run_ms} | ` +
      `${r.reference_ms} | ${r.matches} |`
    ),
    ``,
    `Generation: a checkpoint from \`deno task train\` (hidden 32, 2 layers, PHD-CSWA K = 2, 100`,
    `steps), prompt "${PROMPT}", ${NEW_TOKENS} greedy tokens. The page reads back every token (1 step`,
    `per submit, to stream); the CLI 16 steps per submit. The page's figures are its second`,
    `generation; its first, which builds the decoder's pipelines, had a prefill of`,
    `${first!.prefillMs.toFixed(0)} ms. Each CLI run builds its pipelines afresh.`,
    ``,
    `| where | adapter | prefill ms | decode tokens/s | KV cache bytes |`,
    `| ----- | ------- | ---------- | --------------- | -------------- |`,
    `| page | ${report.adapter} | ${gen.prefillMs.toFixed(0)} | ${
      gen.decodeTokensPerS.toFixed(1)
    } | ${gen.kvBytes} |`,
    `| \`deno task generate\` | ${want.adapter} | ${(want.prefill_ms as number).toFixed(0)} | ${
      (want.decode_tokens_per_s as number).toFixed(1)
    } | ${want.kv_cache_bytes} |`,
    ``,
    `Greedy tokens equal: ${same}.`,
    ``,
    `Training in the page (its tiny model: 2 layers, hidden 32, PHD-CSWA K = 2, batch 8 × 32 bytes of`,
    `the embedded text, the loss read back every step for the live chart), ${TRAIN_STEPS} steps: ${
      training!.summary
    }.`,
  ].join("\n");
  console.log(md);
  if (write) {
    for (const f of await writeResults("Browser playground", md)) console.error(`wrote ${f}`);
  }
}
