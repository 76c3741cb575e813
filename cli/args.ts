/**
 * What every command shares: commander set up to fail with one `error: ...` line and exit 1 on
 * bad input (and exit 0 after `--help`), integer and tokenizer flag parsers, the spec flags (`--K
 * --W --C --param --table`), loading a spec from a preset name or a `.ts` file, and atomic file
 * writes.
 */
import { Command, CommanderError } from "commander";
import { type AttentionSpec, respec } from "../dsl/spec.ts";
import { loadSpecRef } from "../runtime/host/spec_file.ts";
import type { TokenizerChoice } from "../runtime/model/config.ts";

/** Bad input: the command prints the message as one `error:` line and exits with status 1. */
export class UsageError extends Error {}

/** Prints `error: <message>` (its first line) to stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message.split("\n")[0].replace(/^error: /, "")}`);
  Deno.exit(1);
}

/**
 * Runs a command's main function: any error it throws (bad input, a refused spec) becomes one
 * `error:` line and exit status 1. Set `PHD_DEBUG=1` to see the stack of unexpected errors.
 */
export async function runCommand(main: () => void | Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (!(e instanceof UsageError) && Deno.env.get("PHD_DEBUG")) console.error(e);
    fail(e instanceof Error ? e.message : String(e));
  }
}

/** A commander program that throws instead of exiting and prints no error of its own. */
export function newCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .showSuggestionAfterError(true);
}

/**
 * Parses the arguments (`Deno.args` by default). `--help` prints the help and exits 0; a commander
 * error (unknown flag, missing argument or value) is rethrown as a `UsageError` of one line.
 */
export function parseArgv(cmd: Command, argv: string[] = Deno.args): Command {
  try {
    return cmd.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) Deno.exit(0);
      throw new UsageError(e.message.replace(/^error: /, ""));
    }
    throw e;
  }
}

function integer(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    const what = min > 0 ? "a positive integer" : "a non-negative integer";
    throw new UsageError(`${flag} must be ${what}, got "${v}"`);
  }
  return n;
}

/** A commander value parser for a flag that must be a positive integer. */
export function positiveInt(flag: string): (v: string) => number {
  return (v) => integer(flag, v, 1);
}

/** A commander value parser for a flag that must be a non-negative integer. */
export function nonNegativeInt(flag: string): (v: string) => number {
  return (v) => integer(flag, v, 0);
}

/** A value parser for a repeatable `NAME=VALUE` flag, collecting the values by name. */
export function assignments<T>(
  flag: string,
  value: (name: string, v: string) => T,
): (v: string, prev: Record<string, T> | undefined) => Record<string, T> {
  return (v, prev) => {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(v);
    if (!m) throw new UsageError(`${flag} expects NAME=VALUE, got "${v}"`);
    return { ...prev, [m[1]]: value(m[1], m[2]) };
  };
}

/** A `--tokenizer` value: `bytes`, a tokenizer.json path, or `bpe:N` (`{bpe: N}`). */
export function tokenizerFlag(v: string): TokenizerChoice {
  const m = /^bpe:(\d+)$/.exec(v);
  return m ? { bpe: Number(m[1]) } : v;
}

/** The spec flags after parsing (see `addSpecOptions`). */
export interface SpecFlags {
  /** Copies per position. */
  K?: number;
  /** Window parameter W. */
  W?: number;
  /** Chunk parameter C. */
  C?: number;
  /** Any other parameters, by name. */
  param?: Record<string, number>;
  /** Segment tables (sorted start offsets), by name. */
  table?: Record<string, number[]>;
}

/** Adds `--K`, `--W`, `--C`, `--param NAME=VALUE` and `--table NAME=a,b,...` to a command. */
export function addSpecOptions(cmd: Command): Command {
  return cmd
    .option("--K <k>", "copies per position (K = 1 is vanilla)", positiveInt("--K"))
    .option("--W <w>", "window parameter W of the spec", positiveInt("--W"))
    .option("--C <c>", "chunk parameter C of the spec", positiveInt("--C"))
    .option(
      "--param <name=value>",
      "any other spec parameter, e.g. --param P=4 (repeatable)",
      assignments("--param", (name, v) => integer(`--param ${name}`, v, 0)),
    )
    .option(
      "--table <name=starts>",
      "a segment table of increasing starts, e.g. --table docs=0,5,9 (repeatable)",
      assignments(
        "--table",
        (name, v) => v.split(",").map((x) => integer(`--table ${name}`, x, 0)),
      ),
    );
}

/**
 * Loads a spec: a preset name (a key of `PRESETS`) or a `.ts` file whose default export, or else
 * its only exported spec, is an `AttentionSpec` (runtime/host/spec_file.ts). Every failure is a
 * one-line `UsageError`.
 */
export async function loadSpec(ref: string): Promise<AttentionSpec> {
  try {
    return await loadSpecRef(ref);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** Applies the spec flags with `respec`; a flag for a parameter the spec lacks is a UsageError. */
export function applySpecFlags(spec: AttentionSpec, f: SpecFlags): AttentionSpec {
  const params: Record<string, number> = { ...f.param };
  if (f.W !== undefined) params.W = f.W;
  if (f.C !== undefined) params.C = f.C;
  if (f.K === undefined && Object.keys(params).length === 0 && !f.table) return spec;
  try {
    return respec(spec, { K: f.K, params, tables: f.table });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** `loadSpec` then `applySpecFlags`. */
export async function resolveSpec(ref: string, f: SpecFlags): Promise<AttentionSpec> {
  return applySpecFlags(await loadSpec(ref), f);
}

/** Atomic file writes (temp file + rename), shared with the runtime host layer. */
export { writeFileAtomic } from "../runtime/host/files.ts";
