/**
 * The offline bundle (offline/bundle.ts, offline/phd): a small one (no Deno binary, no loaders,
 * gzip, so it builds in seconds) unpacked into a temporary folder runs tasks with no
 * network (`unshare -n`), an empty environment and this Deno through PHD_DENO: a mask (whose
 * imports are npm packages, so nothing may be fetched) and gpu-check's adapter part. Bad input to
 * the builder, the launcher and offline/check_archive.sh is one `error:` line.
 */
import { deepStrictEqual as assertEquals, doesNotMatch, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { assertUsageError, type CliResult, runScript } from "../fixtures/cli.ts";
import { packagesRequired } from "../fixtures/packages.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<CliResult> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, env, clearEnv: env !== undefined })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** How this machine cuts a process off the network: as root, or in a user namespace. */
function unshareNet(): string[] | undefined {
  for (const flags of [["-n"], ["-r", "-n"]]) {
    try {
      const ok = new Deno.Command("unshare", { args: [...flags, "true"], stderr: "null" })
        .outputSync().success;
      if (ok) return flags;
    } catch { /* no unshare */ }
  }
  return undefined;
}

const net = unshareNet();
const why = "unshare -n (root) or unshare -rn (user namespaces) is needed to cut the network";

Deno.test({
  name: `a bundle runs tasks with no network and an empty environment${
    net || packagesRequired() ? "" : ` [skipped: ${why}]`
  }`,
  ignore: !net && !packagesRequired(),
  async fn() {
    ok(net, why);
    const dir = await Deno.makeTempDir({ prefix: "offline_bundle_test_" });
    try {
      const built = await runScript(
        "cli/offline_bundle.ts",
        ...["--out", `${dir}/b.tar.gz`, "--no-deno", "--no-loaders", "--json"],
      );
      assertEquals(built.code, 0, built.stderr);
      const report = JSON.parse(built.stdout);
      ok(report.bytes > 0 && report.bytes <= report.limit_bytes);
      assertEquals(report.manifest.deno, null);
      assertEquals((await run("tar", ["-xf", `${dir}/b.tar.gz`, "-C", dir])).code, 0);
      const phd = `${dir}/phd-attention/phd`;
      const offline = (...args: string[]) =>
        run("unshare", [...net!, phd, ...args], {
          PATH: "/usr/bin:/bin",
          HOME: dir,
          PHD_DENO: Deno.execPath(),
        });
      const [mask, check] = await Promise.all([
        offline("mask", "phd-cswa", "--K", "2", "--L", "8"),
        offline("gpu-check", "--parts", "adapter", "--budget-s", "60", "--out", `${dir}/gc`),
      ]);
      assertEquals(mask.code, 0, mask.stderr);
      match(mask.stdout, /causality: phd_cswa_k2_w16_c32: causal/);
      doesNotMatch(mask.stderr, /Download/, "nothing is fetched");
      assertEquals(check.code, 0, check.stderr);
      const summary = await Deno.readTextFile(`${dir}/gc/summary.md`);
      match(summary, /\| 1\. Adapter \| ok \|/);
      match(summary, /\| 7\. PyTorch on the same GPU \| not asked \|/);
      doesNotMatch(check.stderr, /Download/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("bad input to the builder, the launcher and the archive check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "offline_bad_" });
  try {
    await Deno.writeTextFile(`${dir}/mine.tar.xz`, "my file\n");
    await Deno.writeTextFile(`${dir}/deno.json`, "{}");
    await Deno.copyFile(`${ROOT}/offline/phd`, `${dir}/phd`);
    await Deno.mkdir(`${dir}/bundle/.offline`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/bundle/deno.json`,
      '{\n  "tasks": {\n    "mask": "m"\n  }\n}\n',
    );
    await Deno.copyFile(`${ROOT}/offline/phd`, `${dir}/bundle/phd`);
    const [zip, foreign, archive, phd, task, none] = await Promise.all([
      runScript("cli/offline_bundle.ts", "--out", `${dir}/b.zip`),
      runScript("cli/offline_bundle.ts", "--out", `${dir}/mine.tar.xz`, "--no-deno"),
      run("bash", ["offline/check_archive.sh", `${dir}/none.tar.xz`]),
      run("bash", [`${dir}/phd`, "mask"]),
      run("bash", [`${dir}/bundle/phd`, "nosuch"]),
      run("bash", [`${dir}/bundle/phd`]),
    ]);
    assertUsageError(zip, /--out ".*b\.zip" must end in \.tar, \.tar\.gz, \.tar\.xz/, ".zip");
    assertUsageError(
      foreign,
      /mine\.tar\.xz" exists and is not a bundle archive .*--force/,
      "foreign",
    );
    assertUsageError(
      archive,
      /no archive at .*none\.tar\.xz: build one with deno task offline-bundle/,
      "archive",
    );
    assertUsageError(phd, /is not an unpacked offline bundle/, "launcher");
    assertUsageError(task, /unknown task "nosuch" \(tasks: mask\)$/, "unknown task");
    assertUsageError(none, /usage: \.\/phd <task> \[args\] .*tasks: mask$/, "no task");
    assertEquals(await Deno.readTextFile(`${dir}/mine.tar.xz`), "my file\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
