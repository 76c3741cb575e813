/**
 * Progress of long work on the terminal (stderr): a bar with named fields, redrawn in place on a
 * terminal and every 15 s as a plain line when stderr is a file. Jobs (runtime/jobs/) report through
 * the `Progress` interface, so a library caller can show progress its own way or not at all.
 */
// @ts-types="npm:@types/cli-progress@3.11.6"
import cliProgress from "cli-progress";
import process from "node:process";

/** What a job reports while it runs: a count out of a total, and named fields. */
export interface Progress {
  start(total: number, value: number, fields: Record<string, string>): void;
  update(value: number, fields?: Record<string, string>): void;
  setTotal(total: number): void;
  stop(): void;
}

/**
 * A bar on stderr. `format` is cli-progress's, e.g. `"train [{bar}] {value}/{total} | loss
 * {loss}"`: `{bar}`, `{value}`, `{total}`, `{eta_formatted}` and the fields by name.
 */
export function terminalProgress(format: string): Progress {
  return new cliProgress.SingleBar({
    format,
    stream: process.stderr,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 15000,
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
}
