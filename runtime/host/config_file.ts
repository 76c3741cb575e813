/**
 * Reading a config file (Deno APIs): JSON parsed and checked by `parseConfig`, every problem one
 * line naming the file.
 */
import { type Config, DEFAULT_CONFIG, parseConfig } from "../model/config.ts";

/** Reads and checks a config file (one line naming the problem). */
export async function readConfig(path: string | undefined): Promise<Config> {
  if (!path) return structuredClone(DEFAULT_CONFIG);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`config file "${path}" does not exist`);
    }
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`config file "${path}" is not JSON: ${(e as Error).message}`);
  }
  try {
    return parseConfig(raw);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}
