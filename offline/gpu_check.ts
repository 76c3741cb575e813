/**
 * The engine of `deno task gpu-check` (issue 27): runs a list of parts (offline/gpu_check_parts.ts
 * has the seven) in order of value within one time budget, each given its share of the time left
 * (what a fast part leaves passes on), each a few steps: subprocesses of the project's own commands
 * (`deno test`, `deno task bench ...`, `deno task train ...`) and of the node's python3, stopped
 * with their whole process group (coreutils `timeout`) when the part's time is up. A part that
 * fails or runs out of time is recorded with its status, and the next part runs.
 *
 * After every part, DIR holds `<n>-<part>.json` (format `phd-gpu-check-1`: its status, its steps
 * with their commands, statuses, seconds, exit codes and output tails, and the figures it derived)
 * and `summary.md` (every part's status, then each part's tables), so a run stopped from outside
 * still leaves what it measured: eight files, what one device call brings back.
 *
 * The engine knows no part: a part is a name, a title, a share and a `run` that takes a
 * `PartContext` (its steps, the time it has left, what earlier parts found) and returns its figures
 * and its markdown.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../runtime/host/files.ts";
import { guardOutputs, type Ours, type Output } from "../runtime/host/outputs.ts";
import type { AdapterProbe } from "./adapter_probe.ts";

/** The `format` of every part's JSON. */
export const FORMAT = "phd-gpu-check-1";

/** The project root: every step runs there, as `deno task` does. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A subprocess of a part. */
export interface StepSpec {
  /** What it measures, for the JSON and the summary (e.g. `demo shapes`). */
  name: string;
  /** The command line; a leading `deno` is this process's Deno. */
  argv: string[];
  /** Variables added to this process's environment. */
  env?: Record<string, string>;
  /** Sample the device's (or, on a CPU rasterizer, the process tree's) memory while it runs. */
  sampleMemory?: boolean;
}

/** The peak memory of a step and what it counts. */
export interface PeakMemory {
  bytes: number;
  source: string;
}

/** What a step did, as the part's JSON records it. */
export interface StepRecord {
  name: string;
  command: string;
  /** `ok`, `failed (exit N)`, `timed out after S s`, or `skipped: why`. */
  status: string;
  seconds: number;
  exit_code: number | null;
  /** The end of its stderr (and of its stdout when it did not succeed). */
  stderr_tail: string;
  stdout_tail?: string;
  peak_memory?: PeakMemory;
}

/** A step's record plus its whole stdout (which the part parses, and the JSON leaves out). */
export interface StepResult extends StepRecord {
  ok: boolean;
  stdout: string;
}

/** What the parts found that later parts use. */
export interface Shared {
  /** The default adapter (part 1), when it could be probed. */
  adapter?: AdapterProbe;
  /** A CPU rasterizer (or no adapter): every part runs its quick form. */
  quick: boolean;
  /** An NVIDIA GPU: the f16 and subgroup paths are required, memory is read with nvidia-smi. */
  nvidia: boolean;
  /** A folder for the run's configs, checkpoints and modules (removed at the end). */
  work: string;
  /** Figures a later part compares with, by name (e.g. this runtime's training tokens/s). */
  figures: Record<string, number>;
}

/** What a part gives a step runner and reads from earlier parts. */
export interface PartContext {
  shared: Shared;
  /** Seconds left to this part. */
  left(): number;
  /** Runs one step within the part's time (skipped when less than 3 s are left). */
  step(spec: StepSpec): Promise<StepResult>;
}

/** What a part returns. */
export interface PartReport {
  /** Default: `ok` when every step was, else the first other step's status. */
  status?: string;
  /** One line for the summary's table. */
  note?: string;
  /** Its figures, for the JSON. */
  results: unknown;
  /** Its section of summary.md (tables, notes), without the heading. */
  markdown: string[];
}

/** A part of the check. */
export interface Part {
  name: string;
  title: string;
  /** Its weight in the budget: it gets `share / (shares of it and the parts after it)` of what is left. */
  share: number;
  /** Always runs, asked or not (what the other parts depend on). */
  always?: boolean;
  run(ctx: PartContext): Promise<PartReport>;
}

/** What `runGpuCheck` is asked. */
export interface GpuCheckOptions {
  /** The folder summary.md and the parts' JSON go to. */
  out: string;
  /** Seconds for the whole check. */
  budgetS: number;
  /** The parts to run (default all); the `always` ones run anyway. */
  parts?: readonly string[];
  /** Replace files in `out` that this tool did not write. */
  force?: boolean;
  /** Progress lines (one per part). */
  log?: (line: string) => void;
}

/** One part's outcome, as summary.md lists it. */
export interface PartOutcome {
  name: string;
  title: string;
  status: string;
  seconds: number;
  budget_s: number;
  note: string;
}

/** What `runGpuCheck` returns. */
export interface GpuCheckReport {
  summary: string;
  files: string[];
  seconds: number;
  parts: PartOutcome[];
}

const SECOND = 1000;
const TAIL = 3000;

const tail = (s: string, n = TAIL) => s.length > n ? "..." + s.slice(-n) : s;

/** The display form of a command line (`deno` for this Deno). */
function display(spec: StepSpec): string {
  const env = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return [...env, ...spec.argv.map((a) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)].join(" ");
}

/** Reads the device's used memory (MiB) with nvidia-smi, or undefined when it cannot. */
async function nvidiaUsedBytes(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=memory.used", "--format=csv,noheader,nounits"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const mib = Number(new TextDecoder().decode(out.stdout).trim().split("\n")[0]);
    return out.success && Number.isFinite(mib) ? mib * (1 << 20) : undefined;
  } catch {
    return undefined;
  }
}

/** The resident bytes of a process and all its descendants (Linux /proc). */
function treeRssBytes(root: number): number {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...children.get(ppid) ?? [], Number(e.name)]);
    } catch { /* it ended */ }
  }
  let bytes = 0;
  for (const todo = [root]; todo.length;) {
    const pid = todo.pop()!;
    todo.push(...children.get(pid) ?? []);
    try {
      const kb = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
      bytes += Number(kb ?? 0) * 1024;
    } catch { /* it ended */ }
  }
  return bytes;
}

/**
 * Samples memory every half second until stopped: with nvidia-smi, the device's used memory above
 * what was used before the step (the step's own allocations); elsewhere the resident memory of
 * the step's process tree, where a CPU rasterizer keeps its buffers.
 */
async function sampleMemory(pid: number, nvidia: boolean): Promise<() => Promise<PeakMemory>> {
  const base = nvidia ? await nvidiaUsedBytes() : undefined;
  const read = base !== undefined
    ? async () => ((await nvidiaUsedBytes()) ?? base) - base
    : () => Promise.resolve(treeRssBytes(pid));
  let peak = 0, stopped = false;
  const loop = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await read());
      await new Promise((r) => setTimeout(r, SECOND / 2));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return {
      bytes: peak,
      source: base !== undefined
        ? "nvidia-smi memory.used during the step, less what was used before it"
        : "resident memory of the step's processes (a CPU rasterizer's buffers live there), " +
          "sampled every 0.5 s",
    };
  };
}

/** Runs a step under `timeout` (its whole process group is stopped at `seconds`). */
async function runStep(spec: StepSpec, seconds: number, nvidia: boolean): Promise<StepResult> {
  const base = { name: spec.name, command: display(spec) };
  const limit = Math.floor(seconds);
  if (limit < 3) {
    return {
      ...base,
      status: "skipped: the part's time was spent",
      ok: false,
      seconds: 0,
      exit_code: null,
      stdout: "",
      stderr_tail: "",
    };
  }
  const [program, ...args] = spec.argv;
  const t0 = performance.now();
  const child = new Deno.Command("timeout", {
    args: ["--kill-after=5", `${limit}`, program === "deno" ? Deno.execPath() : program, ...args],
    cwd: ROOT,
    env: spec.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const memory = spec.sampleMemory ? await sampleMemory(child.pid, nvidia) : undefined;
  const out = await child.output();
  const peak = await memory?.();
  const dec = new TextDecoder(), stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  const timedOut = out.code === 124 || out.code === 137;
  const ok = out.success;
  return {
    ...base,
    status: ok ? "ok" : timedOut ? `timed out after ${limit} s` : `failed (exit ${out.code})`,
    ok,
    seconds: +((performance.now() - t0) / SECOND).toFixed(1),
    exit_code: out.code,
    stdout,
    stderr_tail: tail(stderr),
    ...(ok ? {} : { stdout_tail: tail(stdout) }),
    ...(peak ? { peak_memory: peak } : {}),
  };
}

/** The last line of a step's stdout that parses as a JSON object or array, or undefined. */
export function lastJson<T>(stdout: string): T | undefined {
  for (const line of stdout.trim().split("\n").reverse()) {
    if (!/^[[{]/.test(line)) continue;
    try {
      return JSON.parse(line) as T;
    } catch { /* not this line */ }
  }
  return undefined;
}

/** The `error:` line a failed step printed (its last), else its status. */
export function whyFailed(r: StepResult): string {
  const lines = (r.stderr_tail + "\n" + (r.stdout_tail ?? "")).split("\n");
  return lines.filter((l) => /^error: |Error: /.test(l)).at(-1)?.trim() ?? r.status;
}

/**
 * The part's time: `share / sharesLeft` of what is left of the budget, as bench/gpu.sh slices it.
 */
export function slice(o: { budgetS: number; elapsedS: number; share: number; sharesLeft: number }) {
  return Math.max(0, (o.budgetS - o.elapsedS) * o.share / o.sharesLeft);
}

const oursJson: Ours = async (path) => {
  try {
    return JSON.parse(await Deno.readTextFile(path)).format === FORMAT;
  } catch {
    return false;
  }
};

const oursSummary: Ours = async (path) =>
  (await Deno.readTextFile(path).catch(() => "")).startsWith("# gpu-check");

/** The file a part's JSON goes to. */
const partFile = (i: number, p: Part) => `${i + 1}-${p.name}.json`;

/** The markdown of the summary: the run, each part's status, then each part's section. */
function summaryMarkdown(
  head: [string, string][],
  outcomes: PartOutcome[],
  sections: Map<string, string[]>,
): string {
  const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");
  return [
    "# gpu-check",
    "",
    "| | |",
    "| --- | --- |",
    ...head.map(([k, v]) => `| ${k} | ${cell(v)} |`),
    "",
    "| part | status | seconds | its share of the budget (s) | note |",
    "| --- | --- | --: | --: | --- |",
    ...outcomes.map((o, i) =>
      `| ${i + 1}. ${o.title} | ${cell(o.status)} | ${o.seconds} | ${Math.round(o.budget_s)} | ${
        cell(o.note)
      } |`
    ),
    ...outcomes.flatMap((o, i) => {
      const body = sections.get(o.name);
      return body ? ["", `## ${i + 1}. ${o.title}`, "", ...body] : [];
    }),
    "",
  ].join("\n");
}

/** Runs the parts (see the file's header) and returns where the summary went. */
export async function runGpuCheck(
  parts: readonly Part[],
  o: GpuCheckOptions,
): Promise<GpuCheckReport> {
  const names = parts.map((p) => p.name);
  const unknown = (o.parts ?? []).filter((n) => !names.includes(n));
  if (unknown.length) {
    throw new Error(`--parts: unknown part "${unknown[0]}" (parts: ${names.join(", ")})`);
  }
  if (!Number.isFinite(o.budgetS) || o.budgetS <= 0) {
    throw new Error(`--budget-s must be a number of seconds > 0, got ${o.budgetS}`);
  }
  const asked = (p: Part) => p.always || !o.parts || o.parts.includes(p.name);
  const summary = join(o.out, "summary.md");
  const outputs: Output[] = [
    { path: summary, flag: "--out", what: "gpu-check summary", ours: oursSummary },
    ...parts.map((p, i): Output => ({
      path: join(o.out, partFile(i, p)),
      flag: "--out",
      what: "gpu-check part",
      ours: oursJson,
    })),
  ];
  await guardOutputs(outputs, [], { force: o.force });
  const log = o.log ?? (() => {});
  const t0 = performance.now(), started = new Date().toISOString();
  const elapsed = () => (performance.now() - t0) / SECOND;
  const shared: Shared = {
    quick: true,
    nvidia: false,
    work: await Deno.makeTempDir({ prefix: "gpu_check_" }),
    figures: {},
  };
  const outcomes: PartOutcome[] = [], sections = new Map<string, string[]>(), files = [summary];
  const head = (done: boolean): [string, string][] => {
    const a = shared.adapter;
    return [
      ["adapter", a ? `${a.name} (${a.own_class} class)` : "none"],
      ["forms", shared.quick ? "quick (a CPU rasterizer, or no adapter)" : "full (a GPU)"],
      ["budget", `${o.budgetS} s; ${done ? "took" : "so far"} ${elapsed().toFixed(0)} s`],
      ["Deno", `${Deno.version.deno} (${Deno.execPath()})`],
      ["started", started],
    ];
  };
  let sharesLeft = parts.filter(asked).reduce((t, p) => t + p.share, 0);
  try {
    for (const [i, part] of parts.entries()) {
      const base = { name: part.name, title: part.title };
      if (!asked(part)) {
        outcomes.push({ ...base, status: "not asked", seconds: 0, budget_s: 0, note: "" });
        continue;
      }
      const budget = slice({
        budgetS: o.budgetS,
        elapsedS: elapsed(),
        share: part.share,
        sharesLeft,
      });
      sharesLeft -= part.share;
      const p0 = performance.now(), deadline = p0 + budget * SECOND;
      const steps: StepResult[] = [];
      const ctx: PartContext = {
        shared,
        left: () => (deadline - performance.now()) / SECOND,
        step: async (spec) => {
          const r = await runStep(spec, ctx.left(), shared.nvidia);
          steps.push(r);
          log(`  ${part.name}: ${spec.name}: ${r.status} (${r.seconds} s)`);
          return r;
        },
      };
      log(`${i + 1}. ${part.title}: ${budget.toFixed(0)} s`);
      let report: PartReport;
      if (budget < 5) {
        report = { status: "skipped: the budget was spent", results: null, markdown: [] };
      } else {
        report = await part.run(ctx).catch((e): PartReport => ({
          status: `failed: ${e instanceof Error ? e.message : e}`,
          results: null,
          markdown: [],
        }));
      }
      const status = report.status ?? steps.find((s) => !s.ok)?.status ?? "ok";
      const seconds = +((performance.now() - p0) / SECOND).toFixed(1);
      const note = report.note ??
        (status === "ok" ? "" : steps.filter((s) => !s.ok).map(whyFailed).join("; "));
      outcomes.push({ ...base, status, seconds, budget_s: budget, note });
      sections.set(part.name, report.markdown);
      const records: StepRecord[] = steps.map(({ ok: _, stdout: __, ...rec }) => rec);
      const file = join(o.out, partFile(i, part));
      await writeFileAtomic(
        file,
        JSON.stringify(
          {
            format: FORMAT,
            part: part.name,
            title: part.title,
            status,
            note,
            seconds,
            budget_s: budget,
            steps: records,
            results: report.results,
          },
          null,
          1,
        ) + "\n",
      );
      files.push(file);
      await writeFileAtomic(summary, summaryMarkdown(head(false), outcomes, sections));
      log(`${i + 1}. ${part.title}: ${status} (${seconds} s)`);
    }
  } finally {
    await Deno.remove(shared.work, { recursive: true }).catch(() => {});
  }
  const text = summaryMarkdown(head(true), outcomes, sections);
  await writeFileAtomic(summary, text);
  return { summary: text, files, seconds: +elapsed().toFixed(1), parts: outcomes };
}
