/**
 * The summary of a `bench/gpu.sh` run: reads `<dir>/status.tsv`, `adapter.txt` and each
 * benchmark's JSON, and prints markdown: the adapter, each benchmark's status and time, and every
 * list of result rows in its JSON as a table (columns are the rows' scalar fields), so a new
 * benchmark needs no code here.
 *
 *   deno run -A bench/gpu_summary.ts out/gpu > out/gpu/summary.md
 */
type Row = Record<string, unknown>;

/** Markdown tables for each array of objects found in a benchmark's JSON (depth-first). */
export function tables(value: unknown, path = ""): string[] {
  if (Array.isArray(value)) {
    const rows = value.filter((x): x is Row => typeof x === "object" && x !== null);
    if (rows.length === 0) return [];
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) =>
      rows.some((r) => ["string", "number", "boolean"].includes(typeof r[k]))
    );
    const cell = (v: unknown) => v === undefined || typeof v === "object" ? "-" : String(v);
    return [[
      `${path || "results"}:`,
      "",
      `| ${cols.join(" | ")} |`,
      `| ${cols.map(() => "---").join(" | ")} |`,
      ...rows.map((r) => `| ${cols.map((c) => cell(r[c])).join(" | ")} |`),
    ].join("\n")];
  }
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => tables(v, path ? `${path}.${k}` : k));
  }
  return [];
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error("error: usage: deno run -A bench/gpu_summary.ts <dir written by bench/gpu.sh>");
    Deno.exit(1);
  }
  const out = [
    `# bench/gpu.sh`,
    "",
    "```",
    Deno.readTextFileSync(`${dir}/adapter.txt`).trim(),
    "```",
  ];
  out.push("", "| benchmark | status | seconds | flags |", "| --- | --- | --: | --- |");
  const names: string[] = [];
  for (const line of Deno.readTextFileSync(`${dir}/status.tsv`).trim().split("\n")) {
    const [name, status, seconds, flags] = line.split("\t");
    out.push(`| ${name} | ${status} | ${seconds} | ${flags ?? ""} |`);
    if (status === "ok") names.push(name);
  }
  for (const name of names) {
    const text = Deno.readTextFileSync(`${dir}/${name}.json`).trim().split("\n").at(-1) ?? "";
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      out.push("", `## ${name}`, "", "(its output was not JSON; see the log)");
      continue;
    }
    const top = Object.entries(json as Row).filter(([, v]) => typeof v !== "object")
      .map(([k, v]) => `${k} ${v}`).join(", ");
    out.push("", `## ${name}`, "", top, "", ...tables(json).flatMap((t) => [t, ""]));
  }
  console.log(out.join("\n"));
}
