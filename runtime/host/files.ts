/**
 * Host file helpers (Deno APIs): atomic writes (a temp file in the same directory, then rename,
 * so a reader or a crash never sees half a checkpoint or cache file).
 */
import { dirname } from "node:path";

/** Writes `data` to `path` atomically, creating the directory if needed. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
