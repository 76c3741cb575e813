/**
 * `deno task presets [--dir D] [--json]`: the specs a run can name: the presets (`--spec NAME`)
 * and the spec files of `examples/masks/` (`--spec examples/masks/F.ts`), each with its K, its
 * parameters and tables (what `--K` and `--param NAME=V` may override), its position scheme and a
 * line saying what it is.
 */
import { join, relative } from "node:path";
import { PRESETS } from "../dsl/presets.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { loadSpecRef } from "../runtime/host/spec_file.ts";
import { newCommand, parseArgv, runCommand, UsageError } from "./args.ts";

/** Where the example spec files live. */
export const MASKS_DIR = "examples/masks";

/** One listed spec. */
export interface SpecEntry {
  /** What `--spec` takes. */
  spec: string;
  name: string;
  K: number;
  params: Record<string, number>;
  tables: Record<string, readonly number[]>;
  positions: string;
  bidirectional: boolean | "copies";
  score: boolean;
  description: string;
}

function entry(ref: string, s: AttentionSpec): SpecEntry {
  return {
    spec: ref,
    name: s.name,
    K: s.K,
    params: { ...s.params },
    tables: { ...s.tables },
    positions: s.positions,
    bidirectional: s.bidirectional,
    score: s.score !== undefined,
    description: s.description,
  };
}

/** The presets and the spec files of `dir`, files sorted by name. */
export async function listSpecs(dir = MASKS_DIR): Promise<SpecEntry[]> {
  const out = Object.entries(PRESETS).map(([name, f]) => entry(name, f()));
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".ts")) files.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`folder "${dir}" does not exist`);
    throw e;
  }
  for (const f of files.sort()) {
    const ref = relative(Deno.cwd(), join(dir, f));
    out.push(entry(ref, await loadSpecRef(ref)));
  }
  return out;
}

function describe(e: SpecEntry): string {
  const vals = [
    `K=${e.K}`,
    ...Object.entries(e.params).map(([k, v]) => `${k}=${v}`),
    ...Object.entries(e.tables).map(([k, v]) => `${k}=${v.join(",")}`),
  ];
  const flags = [
    e.positions !== "shared" ? `positions ${e.positions}` : "",
    e.bidirectional === true ? "not causal" : "",
    e.score ? "score modifier" : "",
  ].filter(Boolean);
  return `${e.spec.padEnd(36)} ${vals.join(" ").padEnd(22)} ${e.description}` +
    (flags.length ? ` [${flags.join("; ")}]` : "");
}

async function main() {
  const cmd = newCommand("presets", "List the preset specs and the spec files of examples/masks/.")
    .option("--dir <dir>", "folder of spec files to list", MASKS_DIR)
    .option("--json", "print a JSON array of {spec, name, K, params, tables, ...}")
    .addHelpText(
      "after",
      "\nTrain one with: deno task train --spec <spec> [--K k] [--param NAME=V] --data FILE",
    );
  const o = parseArgv(cmd).opts();
  const specs = await listSpecs(o.dir);
  if (o.json) {
    console.log(JSON.stringify(specs));
    return;
  }
  console.log(`${"--spec".padEnd(36)} ${"K and parameters".padEnd(22)} what it is`);
  for (const e of specs) console.log(describe(e));
}

if (import.meta.main) await runCommand(main);
