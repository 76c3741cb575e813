/**
 * The offline bundle (issue 27): one archive that, unpacked into any folder of an x86-64 Linux
 * node without a network, runs every task of this project with `./phd <task> [args]`.
 *
 * It holds, under `phd-attention/`:
 * - the project: the files git tracks and the untracked ones it does not ignore;
 * - `node_modules/`: a fresh `deno install --frozen` of deno.lock, without source maps;
 * - `.offline/deno_dir/npm/`: the npm registry's metadata of those packages (without it Deno asks
 *   the registry for them on every run; with it, nothing is fetched);
 * - `.offline/deno`: the Deno binary that built it (unless `deno: false`);
 * - `.offline/gl/`: Debian's Vulkan and GL loader libraries, unpacked (unless `loaders: false`),
 *   which the launcher uses only for the ones the node lacks;
 * - `phd`: the launcher (offline/phd);
 * - `.offline/manifest.json`: what went in, from which commit.
 *
 * Compression follows the archive's name (`.tar`, `.tar.gz`, `.tar.xz`; GNU tar's `-a`).
 */
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { guardOutputs, type Ours } from "../runtime/host/outputs.ts";

/** The archive's top folder. */
export const TOP = "phd-attention";

/** The default archive (what docs/COMMANDS.md's device command carries). */
export const DEFAULT_ARCHIVE = `out/offline/${TOP}-offline.tar.xz`;

/** Its size limit: what one device call carries beside the working tree (64 MiB in all). */
export const MAX_BYTES = 60 * (1 << 20);

/** Debian's loader packages: Vulkan, and GL through glvnd (libglx0 is libgl1's dependency). */
export const LOADER_PACKAGES = [
  "libvulkan1",
  "libglvnd0",
  "libegl1",
  "libgles2",
  "libgl1",
  "libglx0",
];

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SUFFIXES = [".tar", ".tar.gz", ".tar.xz"];

/** What `buildBundle` is asked. */
export interface BundleOptions {
  /** The archive to write (default `DEFAULT_ARCHIVE`, relative to the project root). */
  out?: string;
  /** Include this Deno's binary (default true). */
  deno?: boolean;
  /** Include Debian's loader libraries (default true). */
  loaders?: boolean;
  /** Replace an existing `out` that is not a bundle. */
  force?: boolean;
  log?: (line: string) => void;
}

/** What went in, and where. */
export interface BundleReport {
  archive: string;
  bytes: number;
  limit_bytes: number;
  /** Unpacked bytes of each part. */
  parts: Record<string, number>;
  manifest: Record<string, unknown>;
}

/** Runs a command; throws one line (its last stderr line) when it fails. */
async function sh(
  cmd: string,
  args: string[],
  o: { cwd?: string; env?: Record<string, string> } = {},
) {
  let out;
  try {
    out = await new Deno.Command(cmd, { args, ...o, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${cmd} is not installed here`);
    throw e;
  }
  const dec = new TextDecoder();
  if (!out.success) {
    const last = dec.decode(out.stderr).trim().split("\n").at(-1) ?? "";
    throw new Error(`${cmd} ${args.slice(0, 3).join(" ")} failed (exit ${out.code}): ${last}`);
  }
  return dec.decode(out.stdout);
}

/** Bytes under a folder (symbolic links not followed). */
async function du(path: string): Promise<number> {
  const st = await Deno.lstat(path);
  if (!st.isDirectory) return st.size;
  let n = 0;
  for await (const e of Deno.readDir(path)) n += await du(join(path, e.name));
  return n;
}

/** Removes every `*.map` file under a folder (source maps: nothing runs them). */
async function removeSourceMaps(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) await removeSourceMaps(p);
    else if (e.isFile && e.name.endsWith(".map")) await Deno.remove(p);
  }
}

/** An archive of ours: its first member is the top folder. */
const oursArchive: Ours = async (path) => {
  try {
    return (await sh("tar", ["-tf", path])).split("\n")[0] === `${TOP}/`;
  } catch {
    return false;
  }
};

/** The project's files: tracked, and untracked but not ignored (deleted ones left out). */
async function projectFiles(): Promise<string[]> {
  const listed =
    (await sh("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: ROOT,
    }))
      .split("\0").filter((f) => f);
  const present = await Promise.all(
    listed.map((f) => Deno.lstat(join(ROOT, f)).then(() => true, () => false)),
  );
  return [...new Set(listed.filter((_, i) => present[i]))];
}

/** Copies the project's files into `top`, preserving modes (through tar). */
async function copyProject(top: string, files: string[]): Promise<void> {
  const list = join(dirname(top), "files.txt");
  await Deno.writeTextFile(list, files.join("\0"));
  const pack = new Deno.Command("tar", {
    args: ["-C", ROOT, "--null", "-T", list, "-cf", "-"],
    stdout: "piped",
  }).spawn();
  const unpack = new Deno.Command("tar", { args: ["-C", top, "-xf", "-"], stdin: "piped" }).spawn();
  await pack.stdout.pipeTo(unpack.stdin);
  const [a, b] = await Promise.all([pack.status, unpack.status]);
  if (!a.success || !b.success) throw new Error("copying the project's files with tar failed");
}

/** `deno install --frozen` in the staged project, then the registry metadata Deno reads offline. */
async function installPackages(top: string, log: (l: string) => void): Promise<number> {
  log("deno install --frozen (npm packages of deno.lock)");
  await sh(Deno.execPath(), ["install", "--frozen", "--quiet"], { cwd: top });
  await removeSourceMaps(join(top, "node_modules"));
  const info = JSON.parse(await sh(Deno.execPath(), ["info", "--json"], { cwd: top }));
  const lock = JSON.parse(await Deno.readTextFile(join(top, "deno.lock")));
  const names = new Set(
    Object.keys(lock.npm ?? {}).map((k) => k.slice(0, k.indexOf("@", 1))),
  );
  for (const name of names) {
    const rel = join("registry.npmjs.org", name, "registry.json");
    const to = join(top, ".offline", "deno_dir", "npm", rel);
    await Deno.mkdir(dirname(to), { recursive: true });
    await Deno.copyFile(join(info.npmCache, rel), to);
  }
  return names.size;
}

/**
 * Debian's loader packages, downloaded once into .cache/offline/debs (apt-get download; after
 * an `apt-get update` when the lists lack them and this is root) and unpacked into `dir`.
 */
async function unpackLoaders(dir: string, log: (l: string) => void): Promise<string[]> {
  const debs = join(ROOT, ".cache", "offline", "debs");
  await Deno.mkdir(debs, { recursive: true });
  const have = () =>
    Array.from(Deno.readDirSync(debs)).map((e) => e.name).filter((n) => n.endsWith("_amd64.deb"));
  const missing = () => LOADER_PACKAGES.filter((p) => !have().some((n) => n.startsWith(`${p}_`)));
  if (missing().length) {
    log(`apt-get download ${missing().join(" ")}`);
    const download = () =>
      sh("apt-get", ["-oAPT::Architecture=amd64", "download", ...missing()], { cwd: debs });
    await download().catch(async (e) => {
      if (Deno.uid() !== 0) throw new Error(`${e.message} (run apt-get update, or --no-loaders)`);
      log("apt-get update (the package lists lack them)");
      await sh("apt-get", ["update", "-qq"]);
      await download();
    });
  }
  const files = LOADER_PACKAGES.map((p) => have().find((n) => n.startsWith(`${p}_`))!);
  for (const f of files) await sh("dpkg-deb", ["-x", join(debs, f), dir]);
  return files;
}

/** Builds the archive (see the file's header) and checks its size. */
export async function buildBundle(o: BundleOptions = {}): Promise<BundleReport> {
  const archive = resolve(ROOT, o.out ?? DEFAULT_ARCHIVE);
  if (!SUFFIXES.some((s) => archive.endsWith(s))) {
    throw new Error(`--out "${o.out}" must end in ${SUFFIXES.join(", ")} (its compression)`);
  }
  await guardOutputs(
    [{ path: archive, flag: "--out", what: "bundle archive", ours: oursArchive }],
    [],
    { force: o.force },
  );
  const log = o.log ?? (() => {});
  const stage = await Deno.makeTempDir({ prefix: "offline_bundle_" });
  try {
    const top = join(stage, TOP), offline = join(top, ".offline");
    await Deno.mkdir(offline, { recursive: true });
    const files = await projectFiles();
    log(`project: ${files.length} files`);
    await copyProject(top, files);
    const packages = await installPackages(top, log);
    const parts: Record<string, number> = {
      project: await du(top) - await du(join(top, "node_modules")) - await du(offline),
      node_modules: await du(join(top, "node_modules")),
      registry_metadata: await du(join(offline, "deno_dir")),
    };
    if (o.deno ?? true) {
      await Deno.copyFile(Deno.execPath(), join(offline, "deno"));
      await Deno.chmod(join(offline, "deno"), 0o755);
      parts.deno = (await Deno.stat(join(offline, "deno"))).size;
    }
    const loaders = (o.loaders ?? true) ? await unpackLoaders(join(offline, "gl"), log) : [];
    if (loaders.length) parts.loaders = await du(join(offline, "gl"));
    await Deno.copyFile(join(ROOT, "offline", "phd"), join(top, "phd"));
    await Deno.chmod(join(top, "phd"), 0o755);
    const commit = (await sh("git", ["rev-parse", "HEAD"], { cwd: ROOT })).trim();
    const dirty = (await sh("git", ["status", "--porcelain"], { cwd: ROOT })).trim() !== "";
    const manifest = {
      format: "phd-offline-bundle-1",
      built: new Date().toISOString(),
      commit: dirty ? `${commit} (with uncommitted changes)` : commit,
      deno: (o.deno ?? true) ? Deno.version.deno : null,
      npm_packages: packages,
      loaders,
      parts,
    };
    await Deno.writeTextFile(
      join(offline, "manifest.json"),
      JSON.stringify(manifest, null, 1) + "\n",
    );
    await Deno.mkdir(dirname(archive), { recursive: true });
    // The temporary name keeps the suffix: it picks the compression.
    const tmp = join(dirname(archive), `.tmp-${Deno.pid}-${basename(archive)}`);
    log(`packing ${basename(archive)}`);
    // xz -6 on every core: Deno's 96 MB binary packs to about 31 MB.
    await sh("tar", ["-C", stage, "-caf", tmp, TOP], { env: { XZ_OPT: "-6 -T0" } })
      .catch(async (e) => {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      });
    const bytes = (await Deno.stat(tmp)).size;
    if (bytes > MAX_BYTES) {
      await Deno.remove(tmp);
      const sizes = Object.entries(parts).map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(1)}`);
      throw new Error(
        `the archive would be ${(bytes / 2 ** 20).toFixed(1)} MiB, over its ${
          MAX_BYTES / 2 ** 20
        } MiB ` +
          `limit (unpacked MiB: ${sizes.join(", ")})`,
      );
    }
    await Deno.rename(tmp, archive);
    return { archive, bytes, limit_bytes: MAX_BYTES, parts, manifest };
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}
