/**
 * `deno task tokenize` as a user runs it, and the token file it writes (runtime/data/token_file.ts,
 * runtime/host/token_file.ts):
 * - the streams are the ones `deno task train --data` trains on (`loadTextCorpus`: same packing,
 *   same split at the last val_fraction, or --val files); the metadata holds the format mark, the
 *   tokenizer exactly as a checkpoint stores it, the vocabulary, the separator and each file's
 *   size and SHA-256; `.safetensors` is added to an --out that lacks it; a BPE is embedded;
 * - the host reader serves any range from disk, and refuses a file that is not a token file, a
 *   truncated one and one of another tokenizer than a checkpoint's, in one line;
 * - bad input to tokenize and to `train --tokens` is one `error:` line before any work.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ByteTokenizer } from "../../runtime/data/tokenizer.ts";
import { TOKEN_FORMAT } from "../../runtime/data/token_file.ts";
import { DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { encodeSafetensors } from "../../runtime/io/safetensors.ts";
import { loadTextCorpus } from "../../runtime/host/token_cache.ts";
import { loadTokenCorpus } from "../../runtime/host/token_file.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";

const tokenize = (...a: string[]) => runScript("cli/tokenize.ts", ...a);
const all = (s: { length: number; subarray(a: number, b: number): Uint32Array }) =>
  Array.from(s.subarray(0, s.length));

async function corpusDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tokenize_" });
  await Deno.writeTextFile(
    join(dir, "a.txt"),
    "The first document.\nIts second line.\n".repeat(30),
  );
  await Deno.writeTextFile(
    join(dir, "b.jsonl"),
    '{"text": "a row of JSONL"}\n{"text": "another row, ünïcödé ✓"}\n',
  );
  await Deno.writeTextFile(join(dir, "v.txt"), "Held out text for validation.");
  return dir;
}

Deno.test("tokenize writes train's split of the files, with the tokenizer and the sources", async () => {
  const dir = await corpusDir(), cacheDir = join(dir, ".cache");
  const files = [join(dir, "a.txt"), join(dir, "b.jsonl")];
  const r = await tokenize(
    ...["--data", files[0], "--data", files[1], "--val-fraction", "0.1"],
    ...["--out", join(dir, "out", "tok"), "--json"],
  );
  assertEquals(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assertEquals(report.out, join(dir, "out", "tok.safetensors"));
  const got = await loadTokenCorpus(report.out);
  const want = await loadTextCorpus(
    { ...DEFAULT_CONFIG.data, train: files, val_fraction: 0.1 },
    new ByteTokenizer(),
    { cacheDir },
  );
  assertEquals(all(got.train), all(want.train));
  assertEquals(all(got.val), all(want.val));
  assertEquals([report.train_tokens, report.val_tokens], [want.train.length, want.val.length]);
  assertEquals(all(got.train.view(100, 7)), all(want.train).slice(100, 107));
  const sha = async (p: string) =>
    createHash("sha256").update(await Deno.readFile(p)).digest("hex");
  assertEquals(got.meta, {
    tokenizer: "bytes",
    vocabSize: 256,
    separator: 0,
    source: {
      train: await Promise.all(files.map(async (path) => ({
        path,
        bytes: (await Deno.stat(path)).size,
        sha256: await sha(path),
      }))),
      val: [],
      val_fraction: 0.1,
      field: "text",
    },
  });
  const bytes = await Deno.readFile(report.out);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(n % 8, 0);
  assert(new TextDecoder().decode(bytes.subarray(8, 8 + n)).includes(`"${TOKEN_FORMAT}"`));

  // --val files; a trained BPE is embedded and written beside the output; a name with the extension
  const bpe = join(dir, "bpe.safetensors");
  const b = await tokenize(
    ...["--data", files[0], "--val", join(dir, "v.txt"), "--tokenizer", "bpe:280", "--out", bpe],
  );
  assertEquals(b.code, 0, b.stderr);
  const bc = await loadTokenCorpus(bpe);
  assertEquals([bc.tokenizer.name, bc.meta.vocabSize, bc.separator], ["bpe-280", 280, 256]);
  assertEquals(all(bc.val), Array.from(bc.tokenizer.encode("Held out text for validation.")));
  assertEquals(JSON.parse(bc.meta.tokenizer).path, "bpe.tokenizer.json");
  await Deno.stat(join(dir, "bpe.tokenizer.json"));
  // the reader refuses another tokenizer than a checkpoint's, and files that are not token files
  await rejects(
    loadTokenCorpus(bpe, { tokenizer: "bytes" }),
    /it was made with tokenizer bpe-280, the checkpoint's is bytes: tokenize the text again/,
  );
  const cut = join(dir, "cut.safetensors");
  await Deno.writeFile(cut, bytes.subarray(0, bytes.length - 4));
  await rejects(loadTokenCorpus(cut), /the header describes \d+ bytes, the file has \d+/);
  for (const x of [got, want, bc]) x.train.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokenize and train --tokens: bad input is one error line", async () => {
  const dir = await corpusDir(), a = join(dir, "a.txt");
  const notTokens = join(dir, "m.safetensors");
  const norm = { dtype: "F32" as const, shape: [2], data: new Float32Array(2) };
  await Deno.writeFile(notTokens, encodeSafetensors(new Map([["w", norm]]), { format: "pt" }));
  const cases: [string[], RegExp][] = [
    [["--out", join(dir, "t")], /give the text to tokenize with --data/],
    [
      ["--data", join(dir, "none.txt"), "--out", join(dir, "t")],
      /--data ".*none.txt" does not exist/,
    ],
    [
      ["--data", a, "--val-fraction", "1", "--out", join(dir, "t")],
      /--val-fraction must be .* \(0, 1\)/,
    ],
  ];
  // an --out that names an input after the extension is added
  await Deno.copyFile(a, `${a}.safetensors`);
  cases.push([
    ["--data", `${a}.safetensors`, "--out", a],
    /would overwrite --data .* an input of this run/,
  ]);
  for (const [args, pattern] of cases) {
    assertUsageError(await tokenize(...args), pattern, args.join(" "));
  }
  const train = (...x: string[]) => runScript("cli/train.ts", ...x);
  assertUsageError(
    await train("--tokens", notTokens, "--out", join(dir, "o.safetensors")),
    /token file ".*m\.safetensors": it is not a token file .* deno task tokenize/,
    "not a token file",
  );
  assertUsageError(
    await train("--tokens", notTokens, "--data", a, "--out", join(dir, "o.safetensors")),
    /config.data.tokens \(a token file\) holds the text and its tokenizer: drop data.train/,
    "--tokens with --data",
  );
  assertUsageError(
    await train("--tokens", notTokens, "--out", notTokens),
    /--out .* would overwrite --tokens .* an input of this run/,
    "--out is --tokens",
  );
  await Deno.remove(dir, { recursive: true });
});
