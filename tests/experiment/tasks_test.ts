/**
 * Synthetic tasks: seeded generation, well-formed lines with the answer at the end, exact-match
 * counting from teacher-forced logits (hand-made logits), bad task fields, and accuracy on the
 * device: a model is trained briefly and its accuracy equals the share of lines greedy decoding
 * through the KV cache (runtime/infer) gets right.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual,
  throws,
} from "node:assert/strict";
import {
  exactMatches,
  type Example,
  examples,
  parseTask,
  taskAccuracy,
  taskCorpus,
} from "../../experiments/harness/tasks.ts";
import { createContext } from "../../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../../runtime/host/gpu_options.ts";
import { parseConfig } from "../../runtime/model/config.ts";
import { Trainer } from "../../runtime/train/trainer.ts";
import { tinyModel } from "../fixtures/model.ts";
import { generate } from "../../runtime/infer/generate.ts";

Deno.test("tasks: seeded lines whose answers are right", () => {
  assertEquals(examples({ name: "addition" }, 5, 7), examples({ name: "addition" }, 5, 7));
  for (const x of examples({ name: "addition", digits: 4 }, 50, 1)) {
    const [a, b] = x.text.slice(0, x.answerStart - 1).split("+").map(Number);
    strictEqual(x.text.slice(x.answerStart), `${a + b}\n`);
    assert(a < 1e4 && b < 1e4);
  }
  for (const x of examples({ name: "addition", digits: 3, reversed: true }, 50, 1)) {
    const [a, b] = x.text.slice(0, x.answerStart - 1).split("+").map(Number);
    strictEqual(x.text.slice(x.answerStart), `${[...`${a + b}`].reverse().join("")}\n`);
  }
  for (const x of examples({ name: "addition", digits: 1, terms: 3 }, 50, 1)) {
    const xs = x.text.slice(0, x.answerStart - 1).split("+").map(Number);
    strictEqual(xs.length, 3);
    strictEqual(x.text.slice(x.answerStart), `${xs[0] + xs[1] + xs[2]}\n`);
  }
  for (const x of examples({ name: "parity", bits: 9 }, 50, 1)) {
    const bits = x.text.slice(0, 9);
    strictEqual(x.text[9], ":");
    strictEqual(x.text.slice(x.answerStart), `${[...bits].filter((c) => c === "1").length % 2}\n`);
  }
  for (const x of examples({ name: "copy", length: 5, delay: 3 }, 50, 1)) {
    strictEqual(x.text.slice(5, x.answerStart), "|...|");
    strictEqual(x.text.slice(x.answerStart), x.text.slice(0, 5) + "\n");
  }
  const c = taskCorpus({ name: "parity", bits: 4 }, { trainBytes: 1000, valExamples: 10 });
  assert(c.train.length >= 1000);
  strictEqual(c.val.length, 10 * 7); // "bbbb:p\n"
});

Deno.test("tasks: exact matches need every answer byte's argmax", () => {
  const V = 128, L = 7;
  const xs: Example[] = [{ text: "1+1=2\n", answerStart: 4 }, { text: "2+2=4\n", answerStart: 4 }];
  const logits = new Float32Array(2 * L * V);
  // Row b·L + t - 1 predicts byte t: make example 0 right ("2\n"), example 1 wrong ("5\n").
  const put = (b: number, t: number, byte: number) => logits[(b * L + t - 1) * V + byte] = 1;
  put(0, 4, "2".charCodeAt(0));
  put(0, 5, 10);
  put(1, 4, "5".charCodeAt(0));
  put(1, 5, 10);
  strictEqual(exactMatches(logits, { V, L, examples: xs }), 1);
  put(1, 4, "4".charCodeAt(0)); // a tie between 4 and 5: the first (lower) byte wins, as argmax
  strictEqual(exactMatches(logits, { V, L, examples: xs }), 2);
});

Deno.test("tasks: bad fields fail with one line", () => {
  throws(
    () => parseTask({ name: "division" }),
    /task "division" is not one of addition, parity, copy/,
  );
  throws(() => parseTask({ name: "parity", digits: 3 }), /unknown field "digits" \(fields: bits\)/);
  throws(() => parseTask({ name: "addition", digits: 0 }), /digits must be an integer in 1\.\.7/);
  throws(() => parseTask("addition"), /task must be an object/);
  throws(
    () => parseTask({ name: "addition", reversed: "yes" }),
    /reversed must be true or false, got "yes"/,
  );
});

Deno.test("tasks: accuracy on the device equals greedy decoding through the KV cache", async () => {
  const ctx = await createContext(gpuOptionsFromEnv());
  const config = parseConfig({
    model: tinyModel({ vocab_size: 256, num_hidden_layers: 1, tie_word_embeddings: false }),
    phd: { K: 2, variant: "phd-cswa", W: 3, C: 8 },
    train: { batch_size: 8, seq_len: 16, steps: 40, lr: 0.03, warmup: 5, eval_batches: 1 },
  });
  const task = { name: "addition" as const, digits: 2 };
  const trainer = new Trainer(ctx, config, taskCorpus(task, { trainBytes: 2000, valExamples: 8 }));
  try {
    for (let i = 0; i < config.train.steps; i++) trainer.trainStep();
    // Lines whose answers are what greedy decoding through the KV cache says after each prompt
    // (3 tokens); every other line gets one answer byte changed.
    const enc = new TextEncoder(), dec = new TextDecoder();
    const xs: Example[] = [];
    for (const [i, x] of examples(task, 24, 3).entries()) {
      const prompt = enc.encode(x.text.slice(0, x.answerStart));
      const r = await generate(ctx, trainer.params, trainer.spec, {
        prompts: [prompt],
        maxNewTokens: 3,
      });
      const answer = Uint8Array.from(r.tokens[0]);
      // Lines are text: ASCII answers survive the string round trip (40 steps teach the bytes).
      assert(answer.every((t) => t < 128), `non-ASCII greedy answer ${answer}`);
      if (i % 2) answer[i % 3] = answer[i % 3] === 65 ? 66 : 65;
      xs.push({
        text: x.text.slice(0, x.answerStart) + dec.decode(answer),
        answerStart: x.answerStart,
      });
    }
    const model = { params: trainer.params, spec: trainer.spec };
    strictEqual(await taskAccuracy(ctx, model, xs, 8), 0.5);
    strictEqual(await taskAccuracy(ctx, model, xs.filter((_, i) => i % 2 === 0), 5), 1);
  } finally {
    trainer.destroy();
    ctx.gpu.device.destroy();
  }
});
