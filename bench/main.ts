/**
 * `deno task bench <name> [flags]`: runs the benchmark module bench/<name>.ts, whose `main(args)`
 * measures on the current machine and prints a table (or JSON with --json); `--help` prints that
 * file's header (what it measures and its flags).
 */
const BENCHES = [
  "analysis",
  "attention",
  "matmul",
  "train",
  "inference",
  "scaling",
  "web",
  "corpus-memory",
  "peers",
  "refusals",
  "stress",
];

const [name, ...args] = Deno.args;
if (!name || name === "--help" || name === "-h") {
  console.log(`usage: deno task bench <${BENCHES.join("|")}> [--json] [--help]

Runs one benchmark on this machine's adapter and prints a table (--json: one JSON object).
peers: the same model's training in PyTorch on the CPU, and numpy's matmul, side by side.
refusals: how long each command takes to refuse input that cannot fit (vs process start-up).
stress: every variant the tuner can choose, at the benches' and the demo's largest sizes, vs float64.
Figures in bench/RESULTS.md come from these commands.`);
  Deno.exit(name ? 0 : 1);
}
if (!BENCHES.includes(name)) {
  console.error(`error: unknown benchmark "${name}"; choose one of: ${BENCHES.join(", ")}`);
  Deno.exit(1);
}
const file = new URL(`./${name.replace("-", "_")}.ts`, import.meta.url);
if (args.includes("--help") || args.includes("-h")) {
  // A bench's help is its file's header: what it measures, its flags, where figures go.
  const header = /^\/\*\*\n([\s\S]*?)\*\//.exec(await Deno.readTextFile(file))?.[1] ?? "";
  console.log(header.split("\n").map((l) => l.replace(/^ \* ?/, "")).join("\n").trim());
  Deno.exit(0);
}
const mod = await import(file.href) as { main(args: string[]): Promise<void> };
await mod.main(args);
