/**
 * Serving the playground (Deno APIs): web/ (index.html, style.css, dist/ with the bundle and its
 * source maps) at `/`, and the example specs of examples/masks/ at `/examples/masks/` with an
 * `index.json` listing them (the page's example menu). Files only, GET and HEAD, never outside
 * those folders, with their MIME types and no caching (a rebuilt bundle shows on reload).
 * `deno task serve` binds `handle` to a port.
 */
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_OUT } from "./build.ts";

/** The port when none is given. */
export const DEFAULT_PORT = 8000;

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** The bundle the page loads, relative to the repository root. */
export const APP_BUNDLE = join(ROOT, DEFAULT_OUT, "app.js");

/** URL prefixes and the folders they serve (first match wins). */
const MOUNTS: readonly [string, string][] = [
  ["/examples/masks/", join(ROOT, "examples/masks")],
  ["/", join(ROOT, "web")],
];

/** Content types by file extension. */
export const MIME: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8", // example specs, read as text by the page
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
  ".safetensors": "application/octet-stream",
};

function reply(status: number, body: string): Response {
  return new Response(`${status} ${body}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** Maps a request path to a file under one of the mounts, or undefined when it leaves them. */
function fileOf(pathname: string): { file: string; dir: string } | undefined {
  let path: string;
  try {
    path = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (path.includes("\0")) return undefined;
  for (const [prefix, dir] of MOUNTS) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length) || "index.html";
    const file = normalize(join(dir, rest.endsWith("/") ? `${rest}index.html` : rest));
    return file === dir || file.startsWith(dir + "/") ? { file, dir } : undefined;
  }
  return undefined;
}

/** The `.ts` files of a folder, sorted: `/examples/masks/index.json`. */
async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ts")) names.push(e.name);
  }
  return names.sort();
}

/** Answers one request. */
export async function handle(req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") return reply(405, "method not allowed");
  const hit = fileOf(new URL(req.url).pathname);
  if (!hit) return reply(404, "not found");
  const headers = { "cache-control": "no-store" };
  if (hit.dir === MOUNTS[0][1] && hit.file === join(hit.dir, "index.json")) {
    return Response.json(await listing(hit.dir), { headers });
  }
  let data: Uint8Array<ArrayBuffer>;
  try {
    data = await Deno.readFile(hit.file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
      return reply(404, "not found");
    }
    return reply(500, (e as Error).message);
  }
  const type = MIME[extname(hit.file)] ?? "application/octet-stream";
  return new Response(req.method === "HEAD" ? null : data, {
    headers: { ...headers, "content-type": type, "content-length": String(data.length) },
  });
}
