/**
 * `deno task demo`: the main job on the embedded default. Trains the demo PHD-CSWA model (the
 * defaults of runtime/model/config.ts) on the Brown corpus, shows progress, prints the validation
 * loss before and after, writes the checkpoint and the loss picture, and prints a generated
 * continuation (runtime/infer/generate.ts). Sized to finish within 5 minutes on 2 CPU cores without a GPU (llvmpipe).
 */
import { DEFAULT_CONFIG } from "../runtime/model/config.ts";
import { generate } from "../runtime/infer/generate.ts";
import { ByteTokenizer } from "../runtime/data/tokenizer.ts";
import { newCommand, parseArgv, positiveInt, runCommand } from "./args.ts";
import { brownCorpus, kernelContext, runTraining } from "./train.ts";

/** The prompt the demo continues. */
const DEMO_PROMPT = "The committee said that the";

async function main() {
  const cmd = newCommand(
    "demo",
    "Train a small PHD-CSWA transformer on the Brown corpus and generate text (about 4 minutes on 2 CPU cores).",
  )
    .option("--steps <n>", "training steps", positiveInt("--steps"), DEFAULT_CONFIG.train.steps)
    .option("--out <dir>", "where the checkpoint and pictures go", "out/demo")
    .option("--prompt <text>", "text to continue", DEMO_PROMPT)
    .option("--max-new-tokens <n>", "bytes to generate", positiveInt("--max-new-tokens"), 160)
    .option("--json", "end with one JSON object (val_loss_before, val_loss_after, seconds, ...)")
    .option("--quiet", "no progress output");
  const o = parseArgv(cmd).opts();
  const t0 = performance.now();
  const config = structuredClone(DEFAULT_CONFIG);
  config.train.steps = o.steps;
  const say = (s: string) => o.quiet || console.error(s);
  say(
    `PHD demo: ${config.phd.variant} K=${config.phd.K} W=${config.phd.W} C=${config.phd.C}, ` +
      `${config.train.steps} steps on the Brown corpus (UTF-8 bytes; unigram entropy 3.04, bigram 2.41 nats)`,
  );
  const ctx = await kernelContext();
  const corpus = await brownCorpus();
  const { report, trainer } = await runTraining(
    {
      config,
      out: `${o.out}/model.safetensors`,
      evalBefore: true,
      quiet: o.quiet,
    },
    ctx,
    corpus,
  );
  const tok = new ByteTokenizer();
  const decoder = new TextDecoder();
  const enc = new TextEncoder();
  if (!o.json) Deno.stdout.writeSync(enc.encode(`\n${o.prompt}`));
  const { tokens } = await generate(ctx, trainer.params, trainer.spec, {
    prompts: [tok.encode(o.prompt)],
    maxNewTokens: o.maxNewTokens,
    sampling: { temperature: 0.7, topK: 20, seed: config.train.seed },
    onTokens: (chunk) => {
      if (o.json) return;
      const bytes = new Uint8Array(chunk.tokens[0]);
      Deno.stdout.writeSync(enc.encode(decoder.decode(bytes, { stream: true })));
    },
  });
  const text = tok.decode(tokens[0]);
  const seconds = (performance.now() - t0) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ ...report, seconds, prompt: o.prompt, continuation: text }));
  } else {
    console.log(
      `\n\nvalidation loss ${report.val_loss_before!.toFixed(3)} -> ${
        report.val_loss_after.toFixed(3)
      } ` +
        `nats/byte in ${seconds.toFixed(0)} s (${report.tokens_per_s.toFixed(0)} tok/s, ` +
        `MFU ${(100 * report.mfu).toFixed(0)}% of ${
          report.matmul_gflops.toFixed(2)
        } GFLOP/s on ${report.adapter})\n` +
        `checkpoint ${report.checkpoint}, loss curve ${report.plot}`,
    );
  }
}

if (import.meta.main) await runCommand(main);
