/**
 * What every command shares: commander set up to fail with one `error: ...` line and exit 1 on
 * bad input (and exit 0 after `--help`), number flag parsers, the spec flags (`--K --W --C
 * --param --table`), and re-exported from the host layer: loading a spec with those flags applied
 * and atomic file writes.
 */
import { Command, CommanderError } from "commander";

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

function integer(flag: string, v: string, min: number, max = Infinity): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    const what = max < Infinity
      ? `an integer in [${min}, ${max}]`
      : min > 0
      ? "a positive integer"
      : "a non-negative integer";
    throw new UsageError(`${flag} must be ${what}, got "${v}"`);
  }
  return n;
}

/** A commander value parser for a flag that must be a positive integer (at most `max`). */
export function positiveInt(flag: string, max?: number): (v: string) => number {
  return (v) => integer(flag, v, 1, max);
}

/** A commander value parser for a flag that must be a finite number > 0. */
export function positiveNumber(flag: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (v.trim() === "" || !(x > 0) || !Number.isFinite(x)) {
      throw new UsageError(`${flag} must be a number > 0, got "${v}"`);
    }
    return x;
  };
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
      "--spec-timeout <s>",
      "seconds a spec file may take to load and build its mask (default 10)",
      positiveNumber("--spec-timeout"),
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

/** Loading a spec with the spec flags applied, and atomic file writes, from the host layer. */
export { applySpecFlags, resolveSpec, type SpecFlags } from "../runtime/host/spec_file.ts";
export { writeFileAtomic } from "../runtime/host/files.ts";
