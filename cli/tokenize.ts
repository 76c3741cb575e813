/**
 * `deno task tokenize --data <files/globs/JSONL>... [--val F]... [--tokenizer bytes|bpe:N|F.json]
 * [--val-fraction f] [--field NAME] --out F [--json]`: writes a token file (docs/DESIGN.md 4.1),
 * the corpus tokenised once with train and validation splits, which `deno task train --tokens F`
 * and `phd_torch train --tokens F` (python/) read without loading it whole. The split is the one
 * `deno task train --data` makes of the same files. The work is runtime/host/token_file.ts
 * `tokenize`; this file parses flags and prints.
 */
import { tokenize } from "../runtime/host/token_file.ts";
import { CACHE_DIR } from "../runtime/host/corpus.ts";
import { parseTokenizerFlag } from "../runtime/host/tokenizer_file.ts";
import { newCommand, parseArgv, runCommand, UsageError } from "./args.ts";

/** A repeatable flag's values. */
const collect = (v: string, prev: string[] = []) => [...prev, v];

function fraction(v: string): number {
  const x = Number(v);
  if (v.trim() === "" || !(x > 0 && x < 1)) {
    throw new UsageError(`--val-fraction must be a number in (0, 1), got "${v}"`);
  }
  return x;
}

async function main() {
  const cmd = newCommand("tokenize", "Tokenise text files once into a token file.")
    .option(
      "--data <path>",
      "training text: a file, folder or glob of .txt/.jsonl (repeatable)",
      collect,
    )
    .option(
      "--val <path>",
      "validation text (repeatable; default: the last --val-fraction)",
      collect,
    )
    .option(
      "--tokenizer <t>",
      "bytes | a tokenizer.json path | bpe:N",
      (v: string) => parseTokenizerFlag(v),
      "bytes",
    )
    .option("--val-fraction <f>", "the validation share of the training ids", fraction, 0.05)
    .option("--field <name>", "the JSONL field holding a document's text", "text")
    .requiredOption("--out <file>", "token file to write (.safetensors is added when missing)")
    .option("--force", "replace an existing --out file that is not a token file of this tool")
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      "\nA trained BPE (bpe:N) is written beside the output as NAME.tokenizer.json and embedded" +
        "\nin it. The ids go through the token cache under .cache/tokens, as deno task train's do.",
    );
  const o = parseArgv(cmd).opts();
  if (!o.data) throw new UsageError("give the text to tokenize with --data FILE (repeatable)");
  const r = await tokenize({
    data: o.data,
    val: o.val,
    tokenizer: o.tokenizer,
    valFraction: o.valFraction,
    field: o.field,
    out: o.out,
    cacheDir: CACHE_DIR,
    warn: (l) => console.error(l),
    log: (l) => o.json || console.error(l),
    force: o.force,
  });
  if (o.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `wrote ${r.out}: ${r.train_tokens} train + ${r.val_tokens} validation ids ` +
        `(${r.tokenizer}, vocabulary ${r.vocab_size}) from ${r.files} file(s) in ` +
        `${r.seconds.toFixed(1)} s`,
    );
  }
}

if (import.meta.main) await runCommand(main);
