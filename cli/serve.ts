/**
 * `deno task serve [--port N] [--host H] [--no-build]`: builds the bundle (web/build.ts) and
 * serves the playground on localhost (web/server.ts).
 */
import { bundle, bundleSummary, DEFAULT_OUT } from "../web/build.ts";
import { APP_BUNDLE, DEFAULT_PORT, handle } from "../web/server.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";

async function main() {
  const cmd = newCommand("deno task serve", "serve the playground page (web/) on localhost")
    .option("--port <n>", `TCP port (0: any free port)`, (v: string) => {
      if (v === "0") return 0;
      const n = positiveInt("--port")(v);
      if (n > 65535) throw new UsageError(`--port must be at most 65535, got ${v}`);
      return n;
    }, DEFAULT_PORT)
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--no-build", `serve ${DEFAULT_OUT}/ as it is (default: bundle first)`)
    .addHelpText(
      "after",
      "\nOpen the printed URL in a browser with WebGPU enabled (e.g. a recent Chrome or Edge).",
    );
  const o = parseArgv(cmd).opts();
  if (o.build) console.error(bundleSummary(await bundle()));
  else {
    try {
      await Deno.stat(APP_BUNDLE);
    } catch {
      throw new UsageError(
        `${DEFAULT_OUT}/app.js is missing: run deno task bundle, or drop --no-build`,
      );
    }
  }
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      port: o.port,
      hostname: o.host,
      onListen: ({ hostname, port }) => {
        // The first stdout line is the URL (tests wait for it).
        console.log(`serving the playground at http://${hostname}:${port}/`);
      },
    }, handle);
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `port ${o.port} is in use: pick another with --port N (0: any free port)`,
      );
    }
    throw e;
  }
  await server.finished;
}

if (import.meta.main) await runCommand(main);
