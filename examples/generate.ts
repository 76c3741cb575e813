/**
 * Generation through the PHD KV cache from a script: load a checkpoint (its spec and tokenizer
 * are rebuilt from the file, whatever they were), stream a continuation of one prompt token by
 * token, then generate for two prompts in one batch with a seeded sampler and print the cache
 * figures (originals, hidden window, bytes) and timings. Both through `generate`, as the commands
 * and the page do.
 *
 *   npx --yes deno@2.9.6 task demo            # writes out/demo/model.safetensors
 *   npx --yes deno@2.9.6 run -A examples/generate.ts [checkpoint]
 */
import {
  createContext,
  generate,
  loadCheckpoint,
  ModelParams,
  tokenizerFromMetadata,
} from "../mod.ts";

const path = Deno.args[0] ?? "out/demo/model.safetensors";
const ck = await loadCheckpoint(path).catch((e) => {
  console.error(`${e.message}: run \`npx --yes deno@2.9.6 task demo\` first, or pass a checkpoint`);
  Deno.exit(1);
});
const ctx = await createContext();
const params = ModelParams.loaded(ctx, ck);
const tok = tokenizerFromMetadata(ck.tokenizer);
console.log(
  `${ck.spec.name} (KV cache ${ck.spec.K > 1 ? "PHD" : "vanilla"}) on ${ctx.gpu.adapterName}`,
);

// 1. Stream one greedy continuation as the tokens reach the host (one readback per 8 steps).
const prompt = tok.encode("The jury said that");
Deno.stdout.writeSync(new TextEncoder().encode(tok.decode(prompt)));
const ids: number[] = [];
let shown = "";
const { stats: s } = await generate(ctx, params, ck.spec, {
  prompts: [prompt],
  maxNewTokens: 80,
  stepsPerSubmit: 8,
  onTokens: (chunk) => {
    // Decode everything so far and print what is new (a token may end inside a character).
    ids.push(...chunk.tokens[0]);
    const text = tok.decode(ids).replace(/\uFFFD$/, "");
    Deno.stdout.writeSync(new TextEncoder().encode(text.slice(shown.length)));
    shown = text;
  },
});
console.log(
  `\nprefill ${s.prefillMs.toFixed(0)} ms (${s.prefillRows[0]} rows), ` +
    `${s.decodeTokensPerS.toFixed(0)} tokens/s, KV cache ${s.kv.bytes} bytes ` +
    `= (${s.kv.originals} originals + ${s.kv.retainedTokens - s.kv.originals} hidden) x ` +
    `${s.kv.bytesPerToken} bytes (plan: ${s.kv.formula})`,
);

// 2. Two prompts in one batch, sampled (temperature, top-k, top-p, seed) on the GPU.
const prompts = ["In the city of", "Mrs. Smith"].map((p) => tok.encode(p));
const res = await generate(ctx, params, ck.spec, {
  prompts,
  maxNewTokens: 60,
  sampling: { temperature: 0.8, topK: 40, topP: 0.95, seed: 1 },
});
res.tokens.forEach((t, b) => console.log(`[${b}] ${tok.decode(prompts[b])}${tok.decode(t)}`));
console.log(`batch of 2: ${res.stats.decodeTokensPerS.toFixed(0)} tokens/s`);
params.destroy();
