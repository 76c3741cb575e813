/**
 * Fuzzing (fast-check) of every file format the project reads: random bytes and mutated valid
 * files for safetensors, model checkpoints and training states; random JSON for configs, the
 * autotune cache, the corpus cache and tokenizers (`bytes` or a tokenizer.json as a checkpoint
 * embeds it). Every case either works (and what it returns passes the format's own checks) or
 * throws one Error of one line; nothing hangs, crashes with a TypeError from deep inside, or
 * accepts a non-finite weight.
 */
import fc from "fast-check";
import { ok as assert } from "node:assert";
import { join } from "node:path";
import { decodeSafetensors } from "../../runtime/io/safetensors.ts";
import {
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
} from "../../runtime/io/checkpoint.ts";
import {
  checkConfig,
  type Config,
  DEFAULT_CONFIG,
  parseConfig,
} from "../../runtime/model/config.ts";
import { paramShapes } from "../../runtime/model/params.ts";
import { initParamsF32 } from "../fixtures/model.ts";
import { loadTuneCache } from "../../runtime/host/tune_cache.ts";
import { isTuneCache } from "../../runtime/tune/engine.ts";
import { isDocumentList, loadBrown } from "../../runtime/host/corpus.ts";
import { tokenizerFromMetadata } from "../../runtime/data/tokenizer.ts";
import { readConfig } from "../../runtime/host/config_file.ts";

const RUNS = 300;

/** Runs `f`; a throw must be an Error with a one-line message (not an internal TypeError). */
function worksOrOneLine<T>(f: () => T, what: string): T | undefined {
  try {
    return f();
  } catch (e) {
    assert(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
    // The engine's own messages mean a check was missing, not that input was refused.
    const internal = /Cannot read properties|is not a function|is not iterable|Cannot convert/;
    assert(!internal.test(e.message), `${what}: internal error ${e.message}`);
    assert(e.message.length > 0 && !e.message.includes("\n"), `${what}: ${e.message}`);
    return undefined;
  }
}

const tiny: Config = (() => {
  const c = structuredClone(DEFAULT_CONFIG);
  c.model = { ...c.model, vocab_size: 11, hidden_size: 8, intermediate_size: 12 };
  c.model.num_attention_heads = 2;
  c.model.num_key_value_heads = 1;
  return c;
})();

function validFiles() {
  const params = initParamsF32(tiny.model, 3);
  const model = encodeCheckpoint({
    model: tiny.model,
    phd: tiny.phd,
    tokenizer: "bytes",
    params,
    step: 4,
    unit: "u",
  });
  const zeros = Object.fromEntries(
    [...paramShapes(tiny.model)].map(([k, s]) => [k, new Float32Array(s.reduce((a, b) => a * b))]),
  );
  const state = encodeTrainingState(tiny, {
    step: 4,
    data: { rng: 9, step: 4 },
    m: zeros,
    v: zeros,
  }, "u");
  return { model, state };
}

/** A valid file with some bytes overwritten (header and data alike). */
function mutated(bytes: Uint8Array) {
  return fc.array(fc.tuple(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 0, max: 255 })), {
    minLength: 1,
    maxLength: 8,
  }).map((edits) => {
    const b = bytes.slice();
    for (const [i, v] of edits) b[i] = v;
    return b;
  });
}

Deno.test("safetensors, checkpoints and states: random and mutated bytes work or fail in one line", () => {
  const { model, state } = validFiles();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (b) => {
      worksOrOneLine(() => decodeSafetensors(b), "random bytes");
      worksOrOneLine(() => decodeCheckpoint(b), "random bytes as checkpoint");
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(mutated(model), (b) => {
      const ck = worksOrOneLine(() => decodeCheckpoint(b), "mutated checkpoint");
      // Whatever loads is a usable model: every weight finite, every shape the config's.
      if (ck) {
        for (const [name, shape] of paramShapes(ck.model)) {
          const t: Float32Array = ck.params[name];
          assert(t.length === shape.reduce((a, c) => a * c, 1), name);
          assert(t.every(Number.isFinite), `${name} holds a non-finite value`);
        }
      }
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(mutated(state), (b) => {
      const st = worksOrOneLine(() => decodeTrainingState(b), "mutated state");
      if (st) {
        checkConfig(st.config);
        assert(Number.isSafeInteger(st.state.step) && st.state.step >= 0);
      }
    }),
    { numRuns: RUNS },
  );
});

/** JSON values, with the keys a config has mixed into random objects. */
const configLike = fc.letrec((tie) => ({
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.double(),
    fc.dictionary(
      fc.constantFrom("model", "phd", "train", "__proto__", "constructor", "toString", "x"),
      tie("section"),
      { maxKeys: 4 },
    ),
  ),
  section: fc.oneof(
    fc.jsonValue({ maxDepth: 1 }),
    fc.dictionary(
      fc.constantFrom(
        ...Object.keys(DEFAULT_CONFIG.model),
        ...Object.keys(DEFAULT_CONFIG.train),
        ...Object.keys(DEFAULT_CONFIG.phd),
        "__proto__",
        "constructor",
      ),
      fc.oneof(
        fc.double(),
        fc.integer(),
        fc.boolean(),
        fc.string({ maxLength: 12 }),
        fc.constant(null),
      ),
      { maxKeys: 6 },
    ),
  ),
})).value;

Deno.test("configs: random JSON parses to a checked config or fails in one line", () => {
  fc.assert(
    fc.property(configLike, (raw) => {
      const c = worksOrOneLine(() => parseConfig(raw), JSON.stringify(raw));
      if (c) {
        checkConfig(c);
        for (const section of Object.values(c)) {
          for (const v of Object.values(section)) {
            if (typeof v === "number") assert(Number.isFinite(v));
          }
        }
      }
      // Nothing reached Object.prototype.
      assert(!("model" in {}) && ({} as Record<string, unknown>).x === undefined);
    }),
    { numRuns: RUNS * 3 },
  );
});

Deno.test("config, autotune and corpus cache files: random text works, warns or fails in one line", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "f.json");
  const texts = fc.oneof(
    fc.string({ maxLength: 64 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.constant("\uFEFF{}"),
  );
  await fc.assert(
    fc.asyncProperty(texts, async (text) => {
      await Deno.writeTextFile(path, text);
      let err: unknown;
      await readConfig(path).catch((e) => (err = e));
      if (err) {
        worksOrOneLine(() => {
          throw err;
        }, `config ${text}`);
      }
      const warnings: string[] = [];
      const cache = await loadTuneCache(path, (l) => warnings.push(l));
      assert(isTuneCache(cache), "an autotune cache is always valid after loading");
      assert(warnings.length <= 1 && warnings.every((w) => !w.includes("\n")));
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch { /* not JSON */ }
      // The corpus cache trusts only a list of {name, text} documents.
      if (isDocumentList(parsed)) assert(parsed.every((d) => typeof d.text === "string"));
      worksOrOneLine(() => tokenizerFromMetadata(text), "tokenizer metadata or tokenizer.json");
    }),
    { numRuns: RUNS },
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupt corpus cache is rebuilt with one warning", async () => {
  const dir = await Deno.makeTempDir();
  const fresh = await loadBrown({ cacheDir: dir });
  const [file] = (await Array.fromAsync(Deno.readDir(dir))).map((e) => join(dir, e.name));
  for (const junk of ["{not json", '{"docs": 1}', "[]", '[{"name": 3}]']) {
    await Deno.writeTextFile(file, junk);
    const warnings: string[] = [];
    const docs = await loadBrown({ cacheDir: dir, warn: (l) => warnings.push(l) });
    assert(warnings.length === 1 && /corrupt.*rebuilding/.test(warnings[0]), warnings.join());
    assert(docs.length === fresh.length && docs[0].text === fresh[0].text);
    assert(isDocumentList(JSON.parse(await Deno.readTextFile(file))), "the cache was rewritten");
  }
  await Deno.remove(dir, { recursive: true });
});
