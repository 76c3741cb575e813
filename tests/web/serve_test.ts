/**
 * `deno task serve` answers like a static file server should: the page and its files with their
 * MIME types and no caching, the example specs with their listing, nothing outside its folders
 * (`..` in any spelling), only GET and HEAD; the commands take --help and refuse bad flags with
 * one error line.
 */
import { ok as assert, strictEqual } from "node:assert/strict";
import { handle } from "../../web/server.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";

const get = (path: string, method = "GET") =>
  handle(new Request(`http://127.0.0.1${path}`, { method }));

Deno.test("serve: files with MIME types, the example listing, nothing outside", async () => {
  for (const [path, type] of [["/", "text/html"], ["/style.css", "text/css"]]) {
    const r = await get(path);
    strictEqual(r.status, 200, path);
    assert(
      r.headers.get("content-type")!.startsWith(type),
      `${path}: ${r.headers.get("content-type")}`,
    );
    strictEqual(r.headers.get("cache-control"), "no-store");
    assert((await r.text()).length > 0);
  }
  const list = await (await get("/examples/masks/index.json")).json();
  assert(list.includes("phd_swa_pos.ts"), JSON.stringify(list));
  const ex = await get("/examples/masks/phd_swa_pos.ts");
  assert((await ex.text()).includes("defineAttention"));
  for (
    const path of [
      "/../deno.json",
      "/%2e%2e/deno.json",
      "/examples/masks/../../deno.json",
      "/nope.js",
    ]
  ) {
    const r = await get(path);
    strictEqual(r.status, 404, path);
    await r.body?.cancel();
  }
  const head = await get("/", "HEAD");
  strictEqual(head.status, 200);
  strictEqual(await head.text(), "");
  const post = await get("/", "POST");
  strictEqual(post.status, 405);
  await post.body?.cancel();
});

Deno.test("bundle and serve: --help, and bad flags get one error line", async () => {
  for (const script of ["cli/bundle.ts", "cli/serve.ts"]) {
    const r = await runScript(script, "--help");
    strictEqual(r.code, 0, r.stderr);
    assert(r.stdout.includes("Usage:"), r.stdout);
  }
  assertUsageError(
    await runScript("cli/serve.ts", "--port", "http"),
    /--port/,
    "serve --port http",
  );
  assertUsageError(
    await runScript("cli/serve.ts", "--port", "70000"),
    /at most 65535/,
    "serve --port 70000",
  );
  assertUsageError(await runScript("cli/bundle.ts", "--wat"), /unknown option/, "bundle --wat");
  assertUsageError(
    await runScript("cli/serve.ts", "--port", "0", "extra"),
    /too many arguments/,
    "serve extra",
  );
});
