/**
 * `deno task bundle [--out DIR] [--minify] [--json]`: builds the platform-neutral core
 * (web/core.ts) and the playground's page script into `web/dist/` with esbuild (web/build.ts) and
 * prints each file's size and gzip size.
 */
import { bundle, bundleSummary, DEFAULT_OUT } from "../web/build.ts";
import { newCommand, parseArgv, runCommand, UsageError } from "./args.ts";

async function main() {
  const cmd = newCommand(
    "deno task bundle",
    "bundle the platform-neutral core (web/core.ts) and the playground page script with esbuild",
  )
    .option("--out <dir>", "output folder", DEFAULT_OUT)
    .option("--minify", "minify the output")
    .option("--json", "print the report as JSON (files with bytes and gzip bytes, inputs)");
  const o = parseArgv(cmd).opts();
  if (o.out.trim() === "") throw new UsageError("--out must name a folder");
  const r = await bundle({ out: o.out, minify: o.minify });
  console.log(o.json ? JSON.stringify(r) : bundleSummary(r));
}

if (import.meta.main) await runCommand(main);
