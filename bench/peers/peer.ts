/**
 * A peer process of `deno task bench peers`: python/bench_peers.py (numpy or PyTorch) started with
 * its BLAS library and threads, asked for measurements over stdin/stdout one JSON line at a time;
 * a peer that cannot start or stops is one `PeerError` line. Also what machine this is.
 */

import { DEFAULT_TUNE_CACHE } from "../../runtime/host/tune_cache.ts";

import { fail, flag } from "../results.ts";

export const base = (p: string) => p.split("/").at(-1)!;

/** Debian's interpreter, whose python3-torch .ci/run installs (tests/fixtures/python.ts). */
export const TORCH_PYTHON = "/usr/bin/python3";
/** The interpreter on PATH: numpy's BLAS there is what a user's numpy gets. */
export const NUMPY_PYTHON = "python3";
/** Variables that tune OpenBLAS for one machine; set aside so every peer runs as shipped. */
export const OPENBLAS_VARS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];
/** Relative difference allowed between the two sides' first-batch losses. */
export const LOSS_RTOL = 1e-5;
/** Where HELP's recipe unpacks Debian's libopenblas0-pthread. */
export const OPENBLAS_DIR = ".cache/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread";
export const PEERS_SCRIPT = new URL("../../python/bench_peers.py", import.meta.url).pathname;
export const PYTHON_DIR = new URL("../../python", import.meta.url).pathname;

export const HELP =
  `usage: deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N]
  [--cache F] [--torch-python P] [--numpy-python P] [--torch-threads N,..] [--torch-blas DIR]
  [--torchrun N,..]

Training tokens/s of the demo model (PHD-CSWA K=2, vanilla K=1) on this adapter and in PyTorch on
the CPU, alternated round by round; matmul GFLOP/s next to numpy's and torch.mm's.
  --rounds N         rounds of the round-robin (default 5, --quick 3)
  --steps N          training steps per runtime and round (default 3, --quick 2)
  --cache F          autotune cache (default ${DEFAULT_TUNE_CACHE}); the tuned kernels come
                     from it (deno task autotune); 1024x512x512 is tuned here when missing
  --torch-python P   interpreter with torch (default ${TORCH_PYTHON})
  --numpy-python P   interpreter with numpy (default ${NUMPY_PYTHON} on PATH)
  --torch-threads L  torch's thread counts, one PyTorch peer each (e.g. 1,2; default: torch's)
  --torch-blas DIR   PyTorch peers with DIR/libblas.so.3 loaded first (LD_LIBRARY_PATH) as well;
                     Debian's OpenBLAS without installing it: apt-get download
                     libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb .cache/openblas,
                     then --torch-blas ${OPENBLAS_DIR}
  --torchrun L       phd_torch train under torchrun with these process counts (e.g. 1,2), one
                     thread each, --torch-blas's BLAS when given: tokens/s and scaling
  --quick            the 1024x512x512 matmul only, fewer rounds
  --write            replace the "Peers" section of bench/RESULTS.md`;

export function positiveFlag(args: string[], name: string, fallback?: number): number | undefined {
  const v = flag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${name} needs a positive integer, got "${v}"`);
  return n;
}

/** A peer that could not start or stopped: its `error:` line, or why it is missing. */
export class PeerError extends Error {}

/**
 * One Python peer: a process of python/bench_peers.py that answers one JSON line per request.
 * Its stderr is kept to explain a failure.
 */
export class Peer {
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stderr: Promise<string>;
  header: Record<string, unknown> = {};

  private constructor(
    readonly what: string,
    python: string,
    args: string[],
    extraEnv: Record<string, string>,
  ) {
    const env = { ...Deno.env.toObject(), ...extraEnv };
    for (const v of OPENBLAS_VARS) delete env[v];
    this.#proc = new Deno.Command(python, {
      args: [PEERS_SCRIPT, ...args],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#proc.stdin.getWriter();
    this.#reader = this.#proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#proc.stderr).text();
  }

  /** Starts the process and reads its header line. */
  static async start(
    what: string,
    python: string,
    args: string[],
    extraEnv: Record<string, string> = {},
  ): Promise<Peer> {
    let peer: Peer;
    try {
      peer = new Peer(what, python, args, extraEnv);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new PeerError(
          `${what}: no interpreter "${python}" (install it, or pass --${what}-python P)`,
        );
      }
      throw e;
    }
    peer.header = await peer.#line();
    return peer;
  }

  async #line(): Promise<Record<string, unknown>> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) {
        const err = (await this.#stderr).trim().split("\n").filter((l) => l.startsWith("error:"));
        throw new PeerError(
          `${this.what} peer (python/bench_peers.py) stopped: ${err.at(-1) ?? "no reply"}`,
        );
      }
      this.#buffered += value;
    }
    const at = this.#buffered.indexOf("\n"), line = this.#buffered.slice(0, at);
    this.#buffered = this.#buffered.slice(at + 1);
    return JSON.parse(line);
  }

  /** Sends one request and waits for its reply. */
  async ask<T>(request: Record<string, unknown>): Promise<T> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    return await this.#line() as T;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {}); // a peer that stopped has closed its end
    await this.#proc.status;
    await this.#reader.cancel().catch(() => {});
    await this.#stderr;
  }
}

/** The CPU model (first "model name" of /proc/cpuinfo) and the 1-minute load average. */
export async function machine(): Promise<
  { cpu: string; cores: number; load: () => Promise<number> }
> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const info = await read("/proc/cpuinfo");
  const cpu = info.match(/^model name\s*:\s*(.*)$/m)?.[1]?.trim() ?? "unknown CPU";
  const load = async () => Number((await read("/proc/loadavg")).split(" ")[0]) || 0;
  return { cpu, cores: navigator.hardwareConcurrency, load };
}
