/**
 * The PyTorch peer of `deno task bench peers` (python/bench_peers.py, driven through
 * bench/peers/peer.ts's Peer with Debian's torch): its header counts the parameters this runtime's
 * model has, its loss of a batch from our weights equals the float64 reference model's
 * (reference/model.ts) to 1e-5 relative (torch computes in float32), it times training steps and
 * matmuls, and a bad request or a missing interpreter is one `error:` line.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { Peer, PeerError } from "../../bench/peers/peer.ts";
import { flexModule } from "../../compiler/codegen/flex.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { configSpec, DEFAULT_CONFIG, type PhdConfig } from "../../runtime/model/config.ts";
import { initParams, paramShapes } from "../../runtime/model/params.ts";
import { forwardBackward } from "../../reference/model.ts";
import { PYTHON } from "../fixtures/python.ts";
import { needs } from "../fixtures/packages.ts";
import { TINY_SECTION } from "../fixtures/model.ts";

Deno.test(
  needs(
    "python3-torch",
    "bench peers: the PyTorch peer trains our model from our weights",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "peers_" });
      const model = { ...DEFAULT_CONFIG.model, ...TINY_SECTION };
      const phd: PhdConfig = { K: 2, variant: "phd-cswa", W: 3, C: 4, positions: "shared" };
      const spec = configSpec(phd), L = 8, batch = 2;
      const params = initParams(model, { seed: 3, std: 0.5 }); // large weights: a loss far from ln 256
      const f32 = Object.fromEntries(
        Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]),
      );
      const ckpt = join(dir, "m.safetensors"), mask = join(dir, "mask.py");
      await Deno.writeFile(
        ckpt,
        encodeCheckpoint({ model, phd, tokenizer: "bytes", context: L, params: f32 }),
      );
      await Deno.writeTextFile(
        mask,
        flexModule(spec, { layout: "interleaved", L, analysis: "(test)", command: "peers_test" }),
      );
      const peer = await Peer.start("torch", PYTHON, [
        "torch",
        ...["--ckpt", ckpt, "--mask", mask, "--batch", `${batch}`, "--seq-len", `${L}`],
        ...["--attention", "dense", "--threads", "1"],
      ]);
      try {
        let count = 0;
        for (const shape of paramShapes(model).values()) {
          count += shape.reduce(
            (a, b) => a * b,
            1,
          );
        }
        assertEquals(peer.header.params, count);
        assertEquals(peer.header.threads, 1);

        const r = new Rng(5), tokens = Array.from({ length: batch * (L + 1) }, () => r.int(256));
        // the reference reads the weights torch reads: the checkpoint's float32 values
        const p64 = Object.fromEntries(
          Object.entries(f32).map(([k, v]) => [k, Float64Array.from(v)]),
        );
        const want = forwardBackward({ config: model, spec, params: p64 }, { tokens, batch }).loss;
        const windows = [tokens.slice(0, L + 1), tokens.slice(L + 1)];
        const got = (await peer.ask<{ loss: number }>({ loss: windows })).loss;
        assert(want > 5.6 || want < 5.5, `the reference loss ${want} is near ln 256`);
        assert(Math.abs(got - want) / want <= 1e-5, `torch ${got} vs float64 reference ${want}`);

        const steps = await peer.ask<{ ms: number[]; loss: number[] }>({ steps: 2 });
        assertEquals(steps.ms.length, 2);
        assert(
          steps.ms.every((x) => x > 0) && steps.loss.every(Number.isFinite),
          JSON.stringify(steps),
        );
        const mm = await peer.ask<{ ms: number }>({ matmul: [8, 4, 6], trans: "tn" });
        assert(mm.ms > 0);
        await rejects(peer.ask({ bogus: 1 }), (e: Error) => {
          assert(e instanceof PeerError && /error: unknown request/.test(e.message), e.message);
          return true;
        });
      } finally {
        await peer.close();
      }
      await rejects(
        Peer.start("torch", join(dir, "no-python"), ["torch"]),
        /torch: no interpreter .* --torch-python P/,
      );
      await Deno.remove(dir, { recursive: true });
    },
  ),
);
