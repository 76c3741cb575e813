/**
 * Shared pieces of the command tests: running a cli/ script as its task does (a subprocess from the
 * repository root), the "one `error:` line, exit status 1, nothing on stdout" check of bad input,
 * and a folder of small spec files.
 */
import { deepStrictEqual as assertEquals, match } from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);
const DSL = new URL("../dsl/mod.ts", import.meta.url).href;

/** Exit status and text output of a command run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A <script> ...args` from the repository root, as `deno task` does. */
export async function runScript(script: string, ...args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Bad input: exit status 1, nothing on stdout, one stderr line `error: ...` matching `pattern`. */
export function assertUsageError(r: CliResult, pattern: RegExp, what: string): void {
  assertEquals(r.code, 1, `${what}: exit ${r.code}`);
  assertEquals(r.stdout, "", what);
  const err = r.stderr.trimEnd().split("\n");
  assertEquals(err.length, 1, `${what}: ${r.stderr}`);
  match(err[0], /^error: /);
  match(err[0], pattern);
}

/** Spec files the command tests load: a non-causal one, a named export, none, a bad name. */
const SPEC_FILES = {
  peek: `import { defineAttention } from "${DSL}";
export default defineAttention({ name: "peek", mask: ({ q, k }) => k.pos.le(q.pos.add(1)) });`,
  named: `import { defineAttention } from "${DSL}";
export const mine = defineAttention({ name: "mine", K: 2, mask: ({ q, k }) => k.pos.le(q.pos) });`,
  nospec: `export const answer = 42;`,
  broken: `import { defineAttention } from "${DSL}";
export default defineAttention({ name: "bad name", mask: ({ q, k }) => k.pos.le(q.pos) });`,
};

/** A temporary folder holding `<name>.ts` for each of `names` (the caller removes it). */
export async function specFiles(
  prefix: string,
  names: (keyof typeof SPEC_FILES)[] = Object.keys(SPEC_FILES) as (keyof typeof SPEC_FILES)[],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  for (const name of names) await Deno.writeTextFile(`${dir}/${name}.ts`, SPEC_FILES[name]);
  return dir;
}
