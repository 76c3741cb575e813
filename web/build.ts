/**
 * Building the browser bundle (Deno APIs, run by `deno task bundle`, `serve`, bench web and the page
 * tests; not itself bundled): esbuild (npm, pinned in deno.json) turns the
 * platform-neutral core (web/core.ts: dsl, compiler, runtime without runtime/host, viz) into one
 * ES module for browsers, `core.js`, and the playground's page script (web/app.ts, which imports
 * the core plus the float64 reference it checks the kernels with) into `app.js`, each with a
 * source map, written atomically into `web/dist/` (what `deno task serve` serves). Prints each
 * file's size and gzip size. `platform: "browser"` makes a Node builtin a build error, and the
 * build refuses any input under runtime/host/, so a Deno-only import cannot slip in.
 */
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../runtime/host/files.ts";

/** Where the bundle goes by default (served by `deno task serve`). */
export const DEFAULT_OUT = "web/dist";

/** The repository root (this file's parent folder's parent). */
const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** Entry points: output name (without `.js`) to source file, relative to the repository root. */
export const ENTRIES: Readonly<Record<string, string>> = {
  core: "web/core.ts",
  app: "web/app.ts",
};

/** One written file. */
export interface BundleFile {
  /** Path relative to the repository root (absolute when outside it). */
  path: string;
  bytes: number;
  gzipBytes: number;
}

/** What `bundle` wrote and read. */
export interface BundleReport {
  files: BundleFile[];
  /** Source files bundled into each entry (repository-relative or node_modules paths). */
  inputs: Record<string, string[]>;
  ms: number;
}

/** Options of `bundle`. */
export interface BundleOptions {
  /** Output folder (relative to the repository root or absolute). Default `web/dist`. */
  out?: string;
  /** Minify identifiers and whitespace (smaller, less readable stack traces). Default false. */
  minify?: boolean;
}

/** Builds the bundle; throws one line on a build error or a host-layer input. */
export async function bundle(o: BundleOptions = {}): Promise<BundleReport> {
  const t0 = performance.now(), out = resolve(ROOT, o.out ?? DEFAULT_OUT);
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, join(ROOT, v)])),
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      sourcemap: true,
      minify: o.minify ?? false,
      outdir: out,
      write: false,
      metafile: true,
      logLevel: "silent",
    });
  } catch (e) {
    const errors = (e as { errors?: esbuild.Message[] }).errors;
    const first = errors?.[0];
    const at = first?.location ? `${first.location.file}:${first.location.line}: ` : "";
    throw new Error(`bundle failed: ${at}${first?.text ?? (e as Error).message}`);
  } finally {
    await esbuild.stop();
  }
  const inputs: Record<string, string[]> = {};
  for (const [file, meta] of Object.entries(result.metafile.outputs)) {
    if (!meta.entryPoint) continue;
    const name = relative(out, resolve(ROOT, file));
    inputs[name] = Object.keys(meta.inputs).sort();
    const host = inputs[name].find((p) => p.startsWith("runtime/host/"));
    if (host) {
      throw new Error(
        `bundle failed: ${name} includes the Deno host layer (${host}): ` +
          `import the platform-neutral module instead`,
      );
    }
  }
  const files: BundleFile[] = [];
  for (const f of result.outputFiles) {
    await writeFileAtomic(f.path, f.contents);
    files.push({
      path: f.path.startsWith(ROOT + "/") ? relative(ROOT, f.path) : f.path,
      bytes: f.contents.length,
      gzipBytes: gzipSync(f.contents).length,
    });
  }
  // Entry order, each module before its map (esbuild writes them in no promised order).
  const rank = (p: string) =>
    Object.keys(ENTRIES).indexOf(p.replace(/^.*\//, "").replace(/\.js(\.map)?$/, "")) * 2 +
    (p.endsWith(".map") ? 1 : 0);
  files.sort((a, b) => rank(a.path) - rank(b.path));
  return { files, inputs, ms: performance.now() - t0 };
}

function kib(n: number): string {
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** The human-readable report: one line per written file. */
export function bundleSummary(r: BundleReport): string {
  return [
    ...r.files.map((f) =>
      `${f.path.padEnd(24)} ${kib(f.bytes).padStart(10)}  (gzip ${kib(f.gzipBytes)})`
    ),
    `bundled ${Object.keys(r.inputs).length} entries in ${r.ms.toFixed(0)} ms`,
  ].join("\n");
}
