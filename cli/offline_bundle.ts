/**
 * `deno task offline-bundle [--out F.tar.xz] [--no-deno] [--no-loaders] [--force] [--json]`: one
 * archive (offline/bundle.ts) that runs every task on an x86-64 Linux node without a network:
 * unpack it anywhere, then `./phd-attention/phd <task> [args]` (`./phd gpu-check` on a GPU node).
 */
import type { Command } from "commander";
import { buildBundle, DEFAULT_ARCHIVE, TOP } from "../offline/bundle.ts";
import { newCommand, parseArgv, runCommand } from "./args.ts";

function program(): Command {
  return newCommand(
    "deno task offline-bundle",
    "build one archive (at most 60 MiB) with the project, Deno, the npm packages and Debian's " +
      "Vulkan/GL loaders, run offline with ./phd <task>",
  )
    .option("--out <file>", "the archive: .tar.xz, .tar.gz or .tar", DEFAULT_ARCHIVE)
    .option("--no-deno", "leave Deno's binary out (the launcher then needs PHD_DENO)")
    .option("--no-loaders", "leave Debian's Vulkan and GL loader libraries out")
    .option("--force", "replace an existing --out file that is not a bundle")
    .option("--json", "print a JSON report");
}

if (import.meta.main) {
  await runCommand(async () => {
    const o = parseArgv(program()).opts<
      { out: string; deno: boolean; loaders: boolean; force?: boolean; json?: boolean }
    >();
    const r = await buildBundle({ ...o, log: (l) => console.error(l) });
    if (o.json) console.log(JSON.stringify(r));
    else {
      console.log(
        `wrote ${r.archive}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB (limit ${
          r.limit_bytes / 2 ** 20
        } MiB); unpack it and run ./${TOP}/phd <task>`,
      );
    }
  });
}
