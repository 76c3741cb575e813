/**
 * Where an experiment's results live (Deno APIs): `<dir>/runs/<arm>__s<seed>.json`, one file per
 * finished run written atomically, so a killed suite keeps every run it finished and `--resume`
 * skips them; the run's definition (config, budget, evaluation points) is stored with it and a
 * stored run whose definition differs from the suite's is run again, never silently reused.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../../runtime/host/files.ts";
import type { RunResult } from "./run.ts";
import { slug } from "./suite.ts";

/** A stored run: what it was asked to do and what it reached. */
export interface StoredRun {
  definition: unknown;
  result: RunResult;
}

export function runPath(dir: string, arm: string, seed: number): string {
  return join(dir, "runs", `${slug(arm)}__s${seed}.json`);
}

/** The stored run of an arm and seed when it exists, parses and has this definition. */
export async function loadRun(
  dir: string,
  arm: string,
  seed: number,
  definition: unknown,
  warn: (line: string) => void,
): Promise<RunResult | undefined> {
  const path = runPath(dir, arm, seed);
  let stored: StoredRun;
  try {
    stored = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      warn(`${path} is unreadable (${e}); running it again`);
    }
    return undefined;
  }
  if (JSON.stringify(stored.definition) !== JSON.stringify(definition)) {
    warn(`${path} was made with another definition of this run; running it again`);
    return undefined;
  }
  return stored.result;
}

export async function saveRun(dir: string, run: StoredRun): Promise<void> {
  await Deno.mkdir(join(dir, "runs"), { recursive: true });
  await writeFileAtomic(
    runPath(dir, run.result.arm, run.result.seed),
    JSON.stringify(run, null, 1) + "\n",
  );
}

/** Whether the folder holds stored runs already. */
export async function hasRuns(dir: string): Promise<boolean> {
  try {
    for await (const e of Deno.readDir(join(dir, "runs"))) {
      if (e.name.endsWith(".json")) return true;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return false;
}

/** Removes the stored runs (a `--fresh` start). */
export async function clearRuns(dir: string): Promise<void> {
  await Deno.remove(join(dir, "runs"), { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** The checkout's commit (`abc1234`, `+dirty` when the tree has changes), or "unknown". */
export async function gitCommit(): Promise<string> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  };
  try {
    const head = await git("rev-parse", "--short", "HEAD");
    if (!head) return "unknown";
    const dirty = await git("status", "--porcelain", "--untracked-files=no");
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}
