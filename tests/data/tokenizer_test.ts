/**
 * Tokenizers (runtime/data/tokenizer.ts): a trained byte-level BPE learns the most frequent pair
 * first, reaches its size on enough text, is deterministic and round-trips any text through
 * @huggingface/tokenizers; any other tokenizer.json the library runs loads too (a WordLevel one
 * here); checkpoint metadata rebuilds the same tokenizer; a file that is not a tokenizer is one
 * clear error.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  BPE_SEPARATOR,
  ByteTokenizer,
  JsonTokenizer,
  tokenizerFromMetadata,
  trainBpe,
} from "../../runtime/data/tokenizer.ts";

const TEXT = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

Deno.test("trained BPE: most frequent pair first, its size, deterministic, lossless", () => {
  const small = trainBpe(["ab ab ab cd"], 258) as { model: { merges: string[] } };
  deepStrictEqual(small.model.merges, ["a b"]);
  const json = trainBpe([TEXT], 400);
  deepStrictEqual(trainBpe([TEXT], 400), json);
  const tok = new JsonTokenizer(json, { kind: "bpe" });
  strictEqual(tok.vocabSize, 400);
  strictEqual(tok.separator, 256);
  strictEqual(tok.name, "bpe-400");
  for (const s of [TEXT, "héllo wörld ✓ 日本語\n\n\ttabs  and  spaces", `a${BPE_SEPARATOR}b`]) {
    const ids = tok.encode(s);
    strictEqual(tok.decode(ids), s);
  }
  const ids = tok.encode(TEXT);
  strictEqual(ids.length < 0.6 * new TextEncoder().encode(TEXT).length, true, `${ids.length}`);
  deepStrictEqual(Array.from(tok.encode(`x${BPE_SEPARATOR}`)).slice(-1), [256]);
});

Deno.test("any tokenizer.json: a WordLevel model loads; metadata rebuilds the same tokenizer", () => {
  const wordLevel = {
    version: "1.0",
    added_tokens: [{ id: 3, content: "[SEP]", special: true, normalized: false }],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    model: {
      type: "WordLevel",
      vocab: { the: 0, cat: 1, "[UNK]": 2, "[SEP]": 3 },
      unk_token: "[UNK]",
    },
    decoder: null,
  };
  const w = new JsonTokenizer(wordLevel, { kind: "file", path: "words.json" });
  deepStrictEqual(Array.from(w.encode("the cat the")), [0, 1, 0]);
  strictEqual(w.vocabSize, 4);
  strictEqual(w.separator, 3);
  for (const t of [w, new JsonTokenizer(trainBpe([TEXT], 300), { kind: "bpe" })]) {
    const back = tokenizerFromMetadata(t.metadata());
    strictEqual(back.name, t.name);
    deepStrictEqual(back.encode(TEXT.slice(0, 500)), t.encode(TEXT.slice(0, 500)));
  }
  strictEqual(tokenizerFromMetadata("bytes").name, new ByteTokenizer().name);
});

Deno.test("not a tokenizer: one line", () => {
  for (const [x, re] of [[{ vocab: {} }, /no model.type/], [[], /no model.type/]] as const) {
    throws(() => new JsonTokenizer(x, { kind: "file" }), re);
  }
  throws(() => tokenizerFromMetadata("gpt9"), /unknown tokenizer "gpt9"/);
  throws(() => trainBpe(["x"], 100), /at least 258 ids/);
});
