/**
 * `deno task generate` as a user runs it (subprocesses). Greedy generation through the PHD KV cache
 * equals an independent implementation of DESIGN.md 1.3 reading the same checkpoint: a minimal
 * safetensors parser, the masks written from DESIGN.md 1.2's formulas, and a float64 forward of the
 * whole sequence per new token (no cache). The JSON report carries the contract's fields and a
 * cache no bigger than vanilla's plus the window. Bad input gets one error line and exit 1.
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { DEFAULT_CONFIG, type PhdConfig } from "../../runtime/model/config.ts";
import { initParams } from "../../runtime/model/params.ts";
import { runScript } from "../fixtures/cli.ts";

/** Runs `deno run -A <script> ...args` as the tasks do. */
const deno = ([script, ...args]: string[]) => runScript(script, ...args);

// ---- the independent implementation ----

type Tensors = Record<string, Float64Array>;

/** F32 tensors and metadata strings of a safetensors file. */
function readSafetensors(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.slice(8 + n);
  const tensors: Tensors = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, data_offsets: [a, b] } = e as { dtype: string; data_offsets: number[] };
    strictEqual(dtype, "F32");
    tensors[name] = Float64Array.from(new Float32Array(data.buffer.slice(a, b)));
  }
  return { tensors, meta: header.__metadata__ as Record<string, string> };
}

/** DESIGN.md 1.2: may query (j, n) attend key (i, m)? */
function allowed(phd: PhdConfig, j: number, n: number, i: number, m: number): boolean {
  const { K, W, C } = phd;
  if (phd.variant === "causal") return m <= n;
  const base = (i === 0 && m < n) || (m === n && i <= j);
  if (phd.variant === "phd" || base) return base;
  const h = (c: number, p: number) => p * (K - 1) + (c - 1);
  const swa = i >= 1 && j >= 1 && h(j, n) - W < h(i, m) && h(i, m) <= h(j, n);
  if (phd.variant === "phd-swa") return swa;
  return swa && Math.floor(m / C) === Math.floor(n / C);
}

/** Logits of the last copy of the last position of `seq` (float64, DESIGN.md 1.3). */
function lastLogits(
  cfg: typeof DEFAULT_CONFIG.model,
  phd: PhdConfig,
  P: Tensors,
  seq: number[],
): Float64Array {
  const K = phd.K, L = seq.length, N = K * L, D = cfg.hidden_size, Hq = cfg.num_attention_heads;
  const Hk = cfg.num_key_value_heads, d = D / Hq, I = cfg.intermediate_size;
  const lin = (x: Float64Array[], w: Float64Array, out: number) =>
    x.map((row) => {
      const y = new Float64Array(out), inp = row.length;
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let k = 0; k < inp; k++) s += row[k] * w[o * inp + k];
        y[o] = s;
      }
      return y;
    });
  const norm = (x: Float64Array[], w: Float64Array) =>
    x.map((row) => {
      const ms = row.reduce((a, v) => a + v * v, 0) / row.length;
      const r = 1 / Math.sqrt(ms + cfg.rms_norm_eps);
      return row.map((v, k) => v * r * w[k]);
    });
  const rope = (x: Float64Array[], heads: number) =>
    x.map((row, t) => {
      const pos = phd.positions === "flattened" ? t : Math.floor(t / K), out = row.slice();
      for (let h = 0; h < heads; h++) {
        for (let k = 0; k < d / 2; k++) {
          const a = pos * Math.pow(cfg.rope_theta, -2 * k / d);
          const x1 = row[h * d + k], x2 = row[h * d + k + d / 2];
          out[h * d + k] = x1 * Math.cos(a) - x2 * Math.sin(a);
          out[h * d + k + d / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
        }
      }
      return out;
    });
  // tokens t = p*K + c, each reads embed(x_p)
  const E = P["model.embed_tokens.weight"];
  let x = Array.from({ length: N }, (_, t) => {
    const id = seq[Math.floor(t / K)];
    return E.slice(id * D, (id + 1) * D);
  });
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const w = (n: string) => P[`model.layers.${l}.${n}.weight`];
    const n1 = norm(x, w("input_layernorm"));
    const q = rope(lin(n1, w("self_attn.q_proj"), Hq * d), Hq);
    const k = rope(lin(n1, w("self_attn.k_proj"), Hk * d), Hk);
    const v = lin(n1, w("self_attn.v_proj"), Hk * d);
    const att = x.map(() => new Float64Array(Hq * d));
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < Hq; h++) {
        const g = Math.floor(h / (Hq / Hk)), keys: number[] = [], s: number[] = [];
        for (let u = 0; u < N; u++) {
          if (!allowed(phd, t % K, Math.floor(t / K), u % K, Math.floor(u / K))) continue;
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[t][h * d + e] * k[u][g * d + e];
          keys.push(u);
          s.push(dot / Math.sqrt(d));
        }
        const mx = Math.max(...s), p = s.map((z) => Math.exp(z - mx));
        const z = p.reduce((a, b) => a + b, 0);
        keys.forEach((u, r) => {
          for (let e = 0; e < d; e++) att[t][h * d + e] += (p[r] / z) * v[u][g * d + e];
        });
      }
    }
    const o = lin(att, w("self_attn.o_proj"), D);
    x = x.map((row, t) => row.map((val, e) => val + o[t][e]));
    const n2 = norm(x, w("post_attention_layernorm"));
    const gate = lin(n2, w("mlp.gate_proj"), I), up = lin(n2, w("mlp.up_proj"), I);
    const act = gate.map((row, t) => row.map((a, e) => (a / (1 + Math.exp(-a))) * up[t][e]));
    const down = lin(act, w("mlp.down_proj"), D);
    x = x.map((row, t) => row.map((val, e) => val + down[t][e]));
  }
  const nf = norm([x[N - 1]], P["model.norm.weight"]);
  const head = cfg.tie_word_embeddings ? E : P["lm_head.weight"];
  return lin(nf, head, cfg.vocab_size)[0];
}

async function checkpoint(dir: string, phd: PhdConfig, seed: number): Promise<string> {
  const model = {
    ...DEFAULT_CONFIG.model,
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  };
  const init = initParams(model, { seed, std: 0.3 });
  const params = Object.fromEntries(
    Object.entries(init).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const path = join(dir, `${phd.variant}.safetensors`);
  await Deno.writeFile(path, encodeCheckpoint({ model, phd, tokenizer: "bytes", params }));
  return path;
}

const PROMPT = "Hello, PHD world";
const NEW = 10;

Deno.test("greedy generate equals an independent implementation on the same checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const cases: PhdConfig[] = [
    { K: 2, variant: "phd-cswa", W: 3, C: 4, positions: "shared" },
    { K: 3, variant: "phd-swa", W: 4, C: 32, positions: "flattened" },
  ];
  const paths = await Promise.all(cases.map((phd, i) => checkpoint(dir, phd, 40 + i)));
  const runs = await Promise.all(paths.map((ckpt) =>
    deno([
      "cli/generate.ts",
      "--ckpt",
      ckpt,
      "--prompt",
      PROMPT,
      "--max-new-tokens",
      `${NEW}`,
      "--greedy",
      "--steps-per-submit",
      "4",
      "--json",
    ])
  ));
  for (const [c, r] of runs.entries()) {
    strictEqual(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    for (const k of ["tokens", "text", "kv_cache_bytes", "prefill_ms", "decode_tokens_per_s"]) {
      assert(k in got, `report lacks ${k}`);
    }
    assert("originals" in got.kv_cache && "hidden_window" in got.kv_cache);
    // Independent: parse the file, rebuild config and variant from its metadata, recompute.
    const file = readSafetensors(await Deno.readFile(paths[c]));
    const cfg = JSON.parse(file.meta.config), phd = JSON.parse(file.meta.phd) as PhdConfig;
    const seq = Array.from(new TextEncoder().encode(PROMPT)), want: number[] = [];
    for (let i = 0; i < NEW; i++) {
      const lg = lastLogits(cfg, phd, file.tensors, seq);
      const next = lg.indexOf(Math.max(...lg));
      want.push(next);
      seq.push(next);
    }
    deepStrictEqual(got.tokens, want, `${phd.variant}: greedy tokens`);
    strictEqual(got.text, new TextDecoder().decode(Uint8Array.from(want)));
    // The cache: every position's original, plus at most W-1 hidden keys.
    const positions = PROMPT.length + NEW - 1;
    strictEqual(got.kv_cache.originals, positions);
    assert(got.kv_cache.hidden_window <= phd.W - 1);
    const bpt = got.kv_cache.bytes_per_token;
    assert(got.kv_cache_bytes >= positions * bpt);
    assert(got.kv_cache_bytes <= (positions + got.kv_cache.hidden_window) * bpt);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad input: one error line and a non-zero exit", async () => {
  const dir = await Deno.makeTempDir();
  const ckpt = await checkpoint(dir, { K: 2, variant: "phd", W: 4, C: 8, positions: "shared" }, 1);
  const gen = (...a: string[]) => ["cli/generate.ts", ...a];
  const cases: [string[], RegExp][] = [
    [gen("--ckpt", "nope.safetensors", "--prompt", "x", "--max-new-tokens", "3"), /does not exist/],
    [gen("--ckpt", ckpt, "--prompt", "", "--max-new-tokens", "3"), /prompt is empty/],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "0"), /positive integer/],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--top-p", "2"), /--top-p/],
    [
      gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--temperature", "-1"),
      /--temperature/,
    ],
    [
      gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--greedy", "--top-k", "3"),
      /--greedy/,
    ],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--bogus"), /unknown option/],
    [gen("--ckpt", join(dir, "x.json"), "--prompt", "x", "--max-new-tokens", "2"), /does not/],
  ];
  const runs = await Promise.all(cases.map(([args]) => deno(args)));
  for (const [i, r] of runs.entries()) {
    const [args, msg] = cases[i];
    strictEqual(r.code, 1, `${args.join(" ")}: exit ${r.code} ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    deepStrictEqual(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert(msg.test(lines[0]), `${args.join(" ")}: ${lines[0]}`);
  }
  await Deno.remove(dir, { recursive: true });
});
