/**
 * `deno task mask` as a user runs it (subprocesses): the summary, pictures written atomically,
 * `--help`, spec files, and one `error:` line with exit status 1 for each kind of bad input.
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { assertUsageError, runScript, specFiles } from "../fixtures/cli.ts";

/** Runs `cli/mask.ts` as the task does. */
const mask = (...args: string[]) => runScript("cli/mask.ts", ...args);

Deno.test("summary, pictures, --help and spec files", async () => {
  const dir = await specFiles("mask_cli_");
  try {
    const [summary, pics, help, named] = await Promise.all([
      mask("phd-swa", "--L", "6", "--W", "3", "--layout", "interleaved", "--tile", "3"),
      mask(
        "examples/masks/softcap_phd.ts",
        ...["--L", "5", "--K", "2", "--svg", `${dir}/m.svg`, "--png", `${dir}/m.png`],
      ),
      mask("--help"),
      mask(`${dir}/named.ts`, "--L", "2", "--K", "1", "--json"),
    ]);
    assertEquals(summary.code, 0, summary.stderr);
    const lines = summary.stdout.trimEnd().split("\n");
    match(lines[0], /^phd_swa_k3_w3: /);
    match(summary.stdout, /causality: phd_swa_k3_w3: causal/);
    match(summary.stdout, /retention: L \+ 2 cached tokens/);
    match(summary.stdout, /prefill of P=6: 18 tokens/);
    match(summary.stdout, /tile classes: interleaved layout, 3x3 tiles, 6x6 grid over 18x18 pairs/);
    // The ASCII picture: one line of 2 characters per key tile for each query tile.
    const grid = lines.slice(-6);
    ok(grid.every((l) => l.length === 12 && /^(██|░░| {2})+$/.test(l)), grid.join("\n"));

    assertEquals(pics.code, 0, pics.stderr);
    match(pics.stdout, /softcap_phd_k2_w8_c16[\s\S]*wrote .*m\.svg\nwrote .*m\.png/);
    ok((await Deno.readTextFile(`${dir}/m.svg`)).startsWith("<svg"));
    assertEquals(
      (await Deno.readFile(`${dir}/m.png`)).subarray(1, 4),
      new Uint8Array([80, 78, 71]),
    );
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".tmp"));
    assertEquals(left, []);

    assertEquals(help.code, 0);
    match(help.stdout, /Usage: .*mask/);
    for (const flag of ["--L", "--K", "--W", "--C", "--json", "--svg", "--png", "--max-cache"]) {
      ok(help.stdout.includes(flag), flag);
    }

    assertEquals(named.code, 0, named.stderr);
    assertEquals(JSON.parse(named.stdout), {
      K: 1,
      L: 2,
      tokens: [[0, 0], [0, 1]],
      allowed: [[1, 0], [1, 1]],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad input: one error line, exit status 1", async () => {
  const dir = await specFiles("mask_cli_");
  const cases: [string[], RegExp][] = [
    [["nope", "--L", "4"], /unknown preset "nope" \(known: causal, phd, phd-swa, phd-cswa/],
    [[`${dir}/missing.ts`, "--L", "4"], /spec file ".*missing\.ts" does not exist/],
    [[`${dir}/nospec.ts`, "--L", "4"], /exports no AttentionSpec/],
    [[`${dir}/broken.ts`, "--L", "4"], /cannot load spec file .*identifier/],
    [["phd", "--L", "0"], /--L must be a positive integer, got "0"/],
    [["phd", "--L", "4", "--K", "two"], /--K must be a positive integer, got "two"/],
    [["phd-cswa", "--L", "4", "--C", "2.5"], /--C must be a positive integer, got "2.5"/],
    [["phd-swa", "--L", "4", "--W", "0"], /--W must be a positive integer, got "0"/],
    [["phd", "--L", "4", "--frobnicate"], /unknown option '--frobnicate'/],
    [["phd"], /required option '--L <n>' not specified/],
    [["phd", "--L", "4", "--W", "3"], /spec "phd" has no parameter W \(it has: none\)/],
    [
      [`${dir}/peek.ts`, "--L", "4"],
      /not causal: query \(copy 0, pos \d\) attends key \(copy 0, pos \d\)/,
    ],
    [
      ["phd-swa", "--L", "64", "--max-cache", "70"],
      /caches up to 79 tokens \(L \+ 15\).*--max-cache 70/,
    ],
    [
      ["causal", "--L", "16", "--K", "2", "--max-cache", "999"],
      /unbounded KV cache \(2·L tokens\)/,
    ],
    [["phd", "--L", "2000", "--json"], /K\*L = 6000 tokens, above the limit of 4096/],
  ];
  try {
    const runs = await Promise.all(cases.map(([args]) => mask(...args)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1], cases[i][0].join(" ")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
