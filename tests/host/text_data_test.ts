/**
 * Text corpora from disk (runtime/host/text_files.ts, runtime/host/token_cache.ts): patterns
 * resolve to sorted files (a file, a folder's text files, `*` and `**` globs; nothing matched is
 * one line); documents are packed with the separator exactly as in memory, JSONL by field, a
 * file larger than the streaming chunk unchanged; the validation split is the last val_fraction;
 * a second load reads the cache (without hashing when nothing changed), an edited file makes a new
 * cache, and a corrupt or truncated cache is rebuilt with one warning.
 */
import { deepStrictEqual, ok as assert, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { ByteTokenizer, JsonTokenizer, trainBpe } from "../../runtime/data/tokenizer.ts";
import { type DataConfig, DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { resolveTextFiles } from "../../runtime/host/text_files.ts";
import { loadTextCorpus, tokenCache } from "../../runtime/host/token_cache.ts";

async function tree(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "text_data_" });
  await Deno.mkdir(join(dir, "sub"));
  await Deno.writeTextFile(join(dir, "a.txt"), "first document\nline two\n");
  await Deno.writeTextFile(join(dir, "b.txt"), "second ✓");
  await Deno.writeTextFile(join(dir, "sub", "c.md"), "# third");
  await Deno.writeTextFile(
    join(dir, "d.jsonl"),
    '{"text": "row one"}\n\n{"text": "row two", "x": 1}\n',
  );
  await Deno.writeFile(join(dir, "skip.bin"), new Uint8Array([1, 2, 3]));
  return dir;
}

const data = (train: string | string[], o: Partial<DataConfig> = {}): DataConfig => ({
  ...DEFAULT_CONFIG.data,
  train,
  ...o,
});

Deno.test("patterns: a file, a folder, globs; nothing matched is one line", async () => {
  const dir = await tree();
  const names = async (p: string | string[]) =>
    (await resolveTextFiles(p, "data.train")).map((f) => f.slice(dir.length + 1));
  deepStrictEqual(await names(dir), ["a.txt", "b.txt", "d.jsonl", "sub/c.md"]);
  deepStrictEqual(await names(join(dir, "*.txt")), ["a.txt", "b.txt"]);
  deepStrictEqual(await names(join(dir, "**", "*.md")), ["sub/c.md"]);
  deepStrictEqual(await names([join(dir, "b.txt"), join(dir, "skip.bin")]), ["b.txt", "skip.bin"]);
  await rejects(resolveTextFiles(join(dir, "*.csv"), "data.train"), /matches no file/);
  await rejects(
    resolveTextFiles(join(dir, "none.txt"), "data.val"),
    /data.val ".*" does not exist/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("packing: documents joined by the separator, as in memory; val is the last fraction", async () => {
  const dir = await tree(), cacheDir = join(dir, ".cache");
  const tok = new ByteTokenizer(), warn: string[] = [];
  const c = await loadTextCorpus(data(dir, { val_fraction: 0.25 }), tok, {
    cacheDir,
    warn: (l) => warn.push(l),
  });
  const docs = ["first document\nline two\n", "second ✓", "row one", "row two", "# third"];
  const want: number[] = [];
  docs.forEach((d, i) => want.push(...(i > 0 ? [0] : []), ...tok.encode(d)));
  const all = [...c.train.subarray(0, c.train.length), ...c.val.subarray(0, c.val.length)];
  deepStrictEqual(all, want);
  strictEqual(c.val.length, want.length - Math.floor(want.length * 0.75));
  deepStrictEqual([...c.val.subarray(2, 5)], want.slice(c.train.length + 2, c.train.length + 5));
  strictEqual(c.built, true);
  const again = await loadTextCorpus(data(dir, { val_fraction: 0.25 }), tok, { cacheDir });
  strictEqual(again.built, false);
  deepStrictEqual([...again.train.subarray(0, 9)], want.slice(0, 9));
  deepStrictEqual(warn, []);
  // a JSONL file without the field is one line naming file and line
  await rejects(
    loadTextCorpus(data(join(dir, "d.jsonl"), { field: "body" }), tok, { cacheDir }),
    /d.jsonl:1: no string field "body"/,
  );
  for (const x of [c, again]) x.train.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a file larger than a streaming chunk, and two-byte ids of a BPE", async () => {
  const dir = await Deno.makeTempDir({ prefix: "text_big_" });
  const line = "the quick brown fox jumps over the lazy dog, ünïcödé ✓\n";
  const text = line.repeat(Math.ceil(2.5 * (1 << 20) / line.length));
  await Deno.writeTextFile(join(dir, "big.txt"), text);
  const bytes = new ByteTokenizer();
  const c = await tokenCache([join(dir, "big.txt")], {
    field: "text",
    tokenizer: bytes,
    cacheDir: dir,
  });
  strictEqual(c.source.length, new TextEncoder().encode(text).length);
  const at = 1234567;
  deepStrictEqual([...c.source.subarray(at, at + 40)], [
    ...bytes.encode(text).subarray(at, at + 40),
  ]);
  c.source.close();
  const bpe = new JsonTokenizer(trainBpe([line.repeat(20)], 300), { kind: "bpe" });
  const small = join(dir, "small.txt");
  await Deno.writeTextFile(small, line.repeat(50));
  const b = await tokenCache([small], { field: "text", tokenizer: bpe, cacheDir: dir });
  strictEqual(b.source.width, 2);
  deepStrictEqual([...b.source.subarray(0, b.source.length)], [...bpe.encode(line.repeat(50))]);
  b.source.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a corrupt or truncated cache is rebuilt with one warning", async () => {
  const dir = await tree(), cacheDir = join(dir, ".cache"), tok = new ByteTokenizer();
  const files = [join(dir, "a.txt"), join(dir, "b.txt")];
  const first = await tokenCache(files, { field: "text", tokenizer: tok, cacheDir });
  const want = [...first.source.subarray(0, first.source.length)];
  first.source.close();
  const damage: [string, (b: Uint8Array) => Uint8Array][] = [
    ["flipped", (b) => (b[70] ^= 1, b)],
    ["truncated", (b) => b.subarray(0, b.length - 3)],
    ["garbage", () => new TextEncoder().encode("not a cache")],
  ];
  for (const [what, hurt] of damage) {
    await new Promise((r) => setTimeout(r, 20)); // a later modification time than the check's
    await Deno.writeFile(first.path, hurt(await Deno.readFile(first.path)));
    const warn: string[] = [];
    const c = await tokenCache(files, {
      field: "text",
      tokenizer: tok,
      cacheDir,
      warn: (l) => warn.push(l),
    });
    strictEqual(warn.length, 1, what);
    assert(/^warning: token cache .* is corrupt \(.*\); rebuilding it$/.test(warn[0]), warn[0]);
    strictEqual(c.built, true);
    deepStrictEqual([...c.source.subarray(0, c.source.length)], want, what);
    c.source.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the index skips hashing when nothing changed; an edited file makes a new cache", async () => {
  const dir = await tree(), cacheDir = join(dir, ".cache"), tok = new ByteTokenizer();
  const files = [join(dir, "a.txt"), join(dir, "b.txt")];
  const o = { field: "text", tokenizer: tok, cacheDir };
  const a = await tokenCache(files, o);
  const index = JSON.parse(await Deno.readTextFile(join(cacheDir, "tokens", "index.json")));
  strictEqual(Object.keys(index).length, 1);
  const b = await tokenCache(files, o);
  deepStrictEqual([b.built, b.path], [false, a.path]);
  await new Promise((r) => setTimeout(r, 20));
  await Deno.writeTextFile(files[0], "first document, edited\n");
  const c = await tokenCache(files, o);
  strictEqual(c.built, true);
  assert(c.path !== a.path);
  deepStrictEqual([...c.source.subarray(0, 9)], [...tok.encode("first doc")]);
  await Deno.remove(join(cacheDir, "tokens", "index.json"));
  const d = await tokenCache(files, o); // no index: the checked path finds the cache
  deepStrictEqual([d.built, d.path], [false, c.path]);
  for (const x of [a, b, c, d]) x.source.close();
  await Deno.remove(dir, { recursive: true });
});
