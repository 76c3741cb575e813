/**
 * `deno task test`: installs the Debian packages the tests need when they are missing (as root,
 * with apt-get; tests/fixtures/packages.ts lists them), picks the WebGPU backend, then runs
 * `deno test -A --parallel tests/` (or the paths given) and exits with its status.
 *
 * - Root (a fresh machine, CI): missing packages are installed, one line says which and why, and
 *   no test may skip: a package that still fails its probe fails its tests.
 * - Not root: one line per missing package names it; the tests that need it are ignored by name.
 * - With lavapipe (mesa-vulkan-drivers) and no `DENO_WEBGPU_BACKEND` set, the suite runs on
 *   Vulkan, which never loads libEGL (whose exit-time destructor can abort a GL test process,
 *   docs/TESTING.md); as root or in CI the f16, timestamp and subgroup paths must then run there
 *   (`PHD_REQUIRE_F16`, `PHD_REQUIRE_TIMESTAMPS`, `PHD_REQUIRE_SUBGROUPS`).
 */
import {
  isPresent,
  missingLine,
  type PackageName,
  PACKAGES,
  packagesRequired,
} from "./fixtures/packages.ts";

async function apt(args: string[]): Promise<void> {
  const out = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const last = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    console.error(`error: apt-get ${args.join(" ")} failed (exit ${out.code}): ${last}`);
    Deno.exit(1);
  }
}

async function installMissing(): Promise<void> {
  const names = Object.keys(PACKAGES) as PackageName[];
  const missing = names.filter((n) => !isPresent(n));
  if (missing.length === 0) {
    console.error(`test setup: ${names.join(", ")} installed (apt-get installs them when missing)`);
    return;
  }
  if (Deno.uid() !== 0) {
    for (const n of missing) console.error(`test setup: ${missingLine(PACKAGES[n])}`);
    return;
  }
  const why = missing.map((n) => `${n}: ${PACKAGES[n].why}`).join("; ");
  console.error(`test setup: installing ${missing.join(", ")} with apt-get (${why})`);
  await apt(["update", "-qq"]);
  await apt(["install", "-y", "-qq", ...missing.flatMap((n) => [...PACKAGES[n].flags, n])]);
  for (const n of missing) {
    if (!PACKAGES[n].present()) {
      console.error(`error: ${n} is still missing after apt-get install`);
      Deno.exit(1);
    }
  }
}

function testEnv(): Record<string, string> {
  const env: Record<string, string> = {
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
  };
  if (Deno.env.get("DENO_WEBGPU_BACKEND") || !PACKAGES["mesa-vulkan-drivers"].present()) return env;
  env.DENO_WEBGPU_BACKEND = "vulkan";
  if (packagesRequired()) {
    for (const f of ["F16", "TIMESTAMPS", "SUBGROUPS"]) env[`PHD_REQUIRE_${f}`] = "1";
  }
  console.error(
    `test setup: WebGPU on Vulkan (lavapipe)${
      packagesRequired() ? "; f16, timestamps and subgroups required" : ""
    }`,
  );
  return env;
}

function paths(args: string[]): string[] {
  const named = args.some((a) => {
    try {
      Deno.statSync(a);
      return true;
    } catch {
      return false;
    }
  });
  return named ? args : [...args, "tests/"];
}

await installMissing();
const root = new URL("..", import.meta.url);
const run = new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", "--parallel", ...paths(Deno.args)],
  cwd: root,
  env: testEnv(),
}).spawn();
Deno.exit((await run.status).code);
