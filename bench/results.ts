/**
 * Writing a benchmark's section of bench/RESULTS.md (and its plots) in place: the section titled
 * `## <title>` is replaced (or appended), files are written atomically and then formatted with
 * `deno fmt` so `deno fmt --check` stays clean; and the flag helpers the benchmarks share.
 */
import { writeFileAtomic } from "../runtime/host/files.ts";

const RESULTS_PATH = "bench/RESULTS.md";

/** Replaces the `## <title>...` section (up to the next `## `) or appends it. */
function replaceSection(doc: string, title: string, section: string): string {
  const re = new RegExp(`^## ${title}[^\\n]*\\n[\\s\\S]*?(?=^## |(?![\\s\\S]))`, "m");
  const body = section.trimEnd() + "\n";
  if (re.test(doc)) return doc.replace(re, body + "\n");
  return doc.trimEnd() + "\n\n" + body;
}

/**
 * Replaces section `title` of bench/RESULTS.md with `markdown` and writes `files` (name under
 * bench/ -> text, e.g. SVG plots); returns the paths written.
 */
export async function writeResults(
  title: string,
  markdown: string,
  files: Record<string, string> = {},
): Promise<string[]> {
  const enc = new TextEncoder();
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    await writeFileAtomic(`bench/${name}`, enc.encode(text));
    written.push(`bench/${name}`);
  }
  const old = await Deno.readTextFile(RESULTS_PATH);
  await writeFileAtomic(RESULTS_PATH, enc.encode(replaceSection(old, title, markdown)));
  written.push(RESULTS_PATH);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", ...written] }).output();
  return written;
}

/** Bad input to a benchmark: one `error:` line and exit status 1. */
export function fail(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(1);
}

/** The value after `--name` in `args` (undefined when absent; a missing value is bad input). */
export function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) fail(`${name} needs a value`);
  return v;
}
