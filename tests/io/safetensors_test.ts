/**
 * safetensors: the exact byte layout of a small file (length prefix, space-padded JSON header,
 * little-endian data), a full model checkpoint round trip with HF names and docs/DESIGN.md 4
 * metadata (through an atomic file write), and one-line refusals of broken files.
 */
import { deepStrictEqual, ok as assert, strictEqual, throws } from "node:assert";
import { join } from "node:path";
import { configSpec, DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { initParams, paramShapes } from "../../runtime/model/params.ts";
import {
  checkpointMetadata,
  decodeSafetensors,
  encodeSafetensors,
  parseCheckpointMetadata,
  type Tensor,
} from "../../runtime/io/safetensors.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";

function small(): Uint8Array {
  return encodeSafetensors(
    new Map<string, Tensor>([
      ["a", { dtype: "F32", shape: [2], data: Float32Array.from([1, -2]) }],
      ["b", { dtype: "F16", shape: [3, 1], data: Uint16Array.from([0x3c00, 0, 0x8000]) }],
    ]),
    { tokenizer: "bytes" },
  );
}

Deno.test("header layout byte by byte", () => {
  const bytes = small();
  const json = '{"__metadata__":{"tokenizer":"bytes"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F16","shape":[3,1],"data_offsets":[8,14]}}';
  const n = Math.ceil(json.length / 8) * 8;
  const expected = [
    ...[n & 0xff, n >> 8, 0, 0, 0, 0, 0, 0],
    ...new TextEncoder().encode(json.padEnd(n, " ")),
    ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], // 1.0f, -2.0f little-endian
    ...[0x00, 0x3c, 0x00, 0x00, 0x00, 0x80], // f16 1, 0, -0
  ];
  deepStrictEqual([...bytes], expected);
  strictEqual((8 + n) % 8, 0);
  const back = decodeSafetensors(bytes);
  deepStrictEqual(back.metadata, { tokenizer: "bytes" });
  deepStrictEqual([...back.tensors.keys()], ["a", "b"]);
  deepStrictEqual(back.tensors.get("b"), {
    dtype: "F16",
    shape: [3, 1],
    data: Uint16Array.from([0x3c00, 0, 0x8000]),
  });
});

Deno.test("a model checkpoint round-trips with HF names and docs/DESIGN.md 4 metadata", async () => {
  const config = { ...DEFAULT_CONFIG.model, tie_word_embeddings: false };
  const phd = DEFAULT_CONFIG.phd, spec = configSpec(phd);
  const params = initParams(config, { seed: 3 });
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of paramShapes(config)) {
    tensors.set(name, { dtype: "F32", shape, data: Float32Array.from(params[name]) });
  }
  const meta = checkpointMetadata({
    config,
    phd: { ...phd, source: spec.source },
    tokenizer: "bytes",
  });
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeFileAtomic(path, encodeSafetensors(tensors, meta));
    const back = decodeSafetensors(await Deno.readFile(path));
    deepStrictEqual([...back.tensors.keys()], [...paramShapes(config).keys()]);
    assert(back.tensors.has("lm_head.weight"));
    assert(back.tensors.has("model.layers.1.self_attn.k_proj.weight"));
    deepStrictEqual(back.tensors.get("model.layers.0.mlp.down_proj.weight")!.shape, [
      config.hidden_size,
      config.intermediate_size,
    ]);
    for (const [name, t] of tensors) deepStrictEqual(back.tensors.get(name), t);
    const parsed = parseCheckpointMetadata(back.metadata);
    deepStrictEqual(parsed.config, config);
    deepStrictEqual(parsed.phd, { ...phd, source: spec.source });
    strictEqual(parsed.tokenizer, "bytes");
    deepStrictEqual(Object.keys(back.metadata).sort(), ["config", "phd", "tokenizer"]);
    for (const v of Object.values(back.metadata)) strictEqual(typeof v, "string");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("broken files and tensors are refused with one line", () => {
  const good = small();
  throws(() => decodeSafetensors(good.subarray(0, 5)), /too short/);
  throws(() => decodeSafetensors(good.subarray(0, 20)), /runs past the end/);
  throws(() => decodeSafetensors(good.subarray(0, good.length - 1)), /bad data_offsets/);
  // same-length edits of the header text, the binary data left as is
  const edit = (from: string, to: string) => {
    const n = good[0], out = good.slice();
    const header = new TextDecoder().decode(good.subarray(8, 8 + n)).replace(from, to);
    out.set(new TextEncoder().encode(header), 8);
    return out;
  };
  throws(() => decodeSafetensors(edit('"F32"', '"I32"')), /dtype I32/);
  throws(() => decodeSafetensors(edit("[8,14]", "[6,12]")), /starts at 6, expected 8/);
  throws(() => decodeSafetensors(edit('"shape":[2]', '"shape":[3]')), /needs 12 bytes/);
  throws(
    () =>
      encodeSafetensors(
        new Map([["x", { dtype: "F32", shape: [2, 2], data: new Float32Array(3) }]]),
      ),
    /holds 4 values but data has 3/,
  );
  throws(() => parseCheckpointMetadata({ tokenizer: "bytes" }), /no "config"/);
});
