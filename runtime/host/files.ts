/**
 * Host file helpers (Deno APIs): atomic writes (a temp file in the same directory, then rename,
 * so a reader or a crash never sees half a checkpoint or cache file), removal of the temp files a
 * killed writer left behind, and a check that an output path is writable before long work.
 */
import { basename, dirname, join, resolve } from "node:path";

/** Temp files are `<path>.tmp-<pid>-<8 hex>`: the pid says whether their writer still runs. */
const TEMP = /\.tmp-(\d+)-[0-9a-f]{8}$/;

/** A fresh temp file name beside `path` (`removeStaleTemps` knows the pattern). */
export function tempPath(path: string): string {
  return `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Writes `data` to `path` atomically, creating the directory if needed. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = tempPath(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Writes `path` atomically from a stream of writes: `fill` gets the open temp file (write all of
 * its bytes, seek back if it must) and the file becomes `path` only once `fill` returns; on any
 * error the temp file is removed. For files too large to hold in memory (token files, caches).
 */
export async function writeStreamAtomic(
  path: string,
  fill: (f: Deno.FsFile) => Promise<void>,
): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = tempPath(path);
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await fill(f);
    f.close();
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      f.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Writes all of `bytes` to `f` (a write may take fewer). */
export async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let w = 0; w < bytes.length;) w += await f.write(bytes.subarray(w));
}

/** Whether a path exists (file, folder or anything). */
export function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the temp files of `writeFileAtomic` beside `path` whose names start with `path`'s base
 * name (`model` also matches `model.step-00000050.safetensors.tmp-...`) and whose writer is dead
 * (or, where liveness cannot be told, that are older than a day). Returns the paths removed.
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path), prefix = basename(path).replace(/\.safetensors$/, "");
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed; // no directory yet: nothing stale
  }
  for (const e of entries) {
    const m = TEMP.exec(e.name);
    if (!e.isFile || !m || !e.name.startsWith(prefix)) continue;
    const p = join(dir, e.name), pid = Number(m[1]);
    let stale: boolean;
    if (pid === Deno.pid) stale = false;
    else if (existsSync("/proc/self")) stale = !existsSync(`/proc/${pid}`);
    else {
      // Without /proc (macOS, Windows) a writer cannot be looked up: only old files are stale.
      const mtime = (await Deno.stat(p)).mtime?.getTime() ?? Date.now();
      stale = Date.now() - mtime > 86_400_000;
    }
    if (stale) {
      await Deno.remove(p).catch(() => {});
      removed.push(p);
    }
  }
  return removed;
}

/**
 * Checks before long work that `path` can be written: it is not a directory, and a probe file can
 * be created (and removed) in its folder or, where that folder does not exist yet, in the nearest
 * one that does (nothing is created: a refused run leaves no folder behind). Throws one line naming
 * the path and the reason.
 */
export async function checkWritable(path: string, what = "output"): Promise<void> {
  try {
    const st = await Deno.stat(path).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (st?.isDirectory) throw new Error("it is a directory, give a file name");
    let dir = dirname(resolve(path));
    for (;;) {
      const d = await Deno.stat(dir).catch(() => undefined);
      if (d && !d.isDirectory) throw new Error(`${dir} is a file, not a folder`);
      if (d || dir === dirname(dir)) break;
      dir = dirname(dir);
    }
    const probe = tempPath(join(dir, `.${basename(path)}`));
    await Deno.writeFile(probe, new Uint8Array(0));
    await Deno.remove(probe);
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    throw new Error(`cannot write ${what} "${path}": ${msg}`);
  }
}
