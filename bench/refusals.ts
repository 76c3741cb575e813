/**
 * `deno task bench refusals [--runs N] [--json]`: how long each command takes to refuse input that
 * cannot fit or cannot be written (docs/DESIGN.md 3: refused before any work, with the number
 * that would fit), measured as wall time of the whole process against the start-up of one that
 * is refused at argument parsing. The cases are also the ones tests/model/limits_test.ts checks
 * for their one error line (tests/fixtures/refusals.ts), so what is timed here is what is tested
 * there.
 */
import { type RefusalCase, refusalCases } from "../tests/fixtures/refusals.ts";
import { median } from "../runtime/measure/stats.ts";
import { fail, flag } from "./results.ts";

/** Wall milliseconds of `deno run -A <args>`; throws unless it refused (exit 1, an error line). */
async function timeRefusal(c: RefusalCase): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--node-modules-dir=manual", ...c.args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
  }).output();
  const ms = performance.now() - t0;
  const err = new TextDecoder().decode(out.stderr).trim();
  if (out.code !== 1 || !c.pattern.test(err)) {
    throw new Error(`${c.what}: expected a refusal matching ${c.pattern}, got exit ${out.code}`);
  }
  return ms;
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(flag(args, "--runs") ?? "5");
  if (!Number.isInteger(runs) || runs < 1) fail("--runs takes a positive integer");
  const dir = await Deno.makeTempDir({ prefix: "refusals_" });
  try {
    const cases = await refusalCases(dir);
    // Rounds over all cases rather than one case at a time, so a load change hits every case.
    const times = cases.map(() => [] as number[]);
    for (let r = 0; r < runs; r++) {
      for (const [i, c] of cases.entries()) times[i].push(await timeRefusal(c));
    }
    const base = median(times[0], { even: "upper" });
    const rows = cases.map((c, i) => {
      const ms = median(times[i], { even: "upper" });
      return { what: c.what, median_ms: Math.round(ms), past_start_up_ms: Math.round(ms - base) };
    });
    if (args.includes("--json")) {
      console.log(JSON.stringify({ runs, load: Deno.loadavg()[0], rows }));
      return;
    }
    console.log(`median of ${runs} runs each (load average ${Deno.loadavg()[0].toFixed(2)})`);
    console.log("| refusal | wall ms | past start-up ms |\n| --- | ---: | ---: |");
    for (const r of rows) console.log(`| ${r.what} | ${r.median_ms} | ${r.past_start_up_ms} |`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
