/**
 * Exporting a spec (a preset, a spec file or a checkpoint's own) as a Python module for PyTorch
 * FlexAttention, what `deno task export` calls: `mask_mod`, `score_mod`, `block_mask` and the
 * analysis as its docstring (compiler/codegen/flex.ts), with the checkpoint `phd` metadata that
 * names the spec when checkpoints can. A spec the target cannot express is refused in one line
 * before any analysis.
 */
import { analyze, summarize } from "../../compiler/analysis/analyze.ts";
import { FlexExportError, flexModule } from "../../compiler/codegen/flex.ts";
import type { Layout } from "../../compiler/layout.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { specToJson } from "../../dsl/serial.ts";
import { PRESETS } from "../../dsl/presets.ts";
import { loadCheckpoint } from "../host/checkpoint.ts";
import { applySpecFlags, isSpecPath, resolveSpec, type SpecFlags } from "../host/spec_file.ts";
import { guardOutputs, oursFlexModule } from "../host/outputs.ts";
import { writeFileAtomic } from "../host/files.ts";
import { checkpointMetadata } from "../io/safetensors.ts";
import { configSpec, DEFAULT_CONFIG, type PhdConfig, phdOf } from "../model/config.ts";
import { maskSummary } from "../../viz/mask_report.ts";

/** Export targets. */
export const TARGETS = ["flex"] as const;

/** FlexAttention's default block edge: the docstring's tile classes preview its BlockMask. */
const FLEX_BLOCK = 128;

/** What `exportCommand` is asked (with the spec flags applied to the spec). */
export interface ExportFlags extends SpecFlags {
  to: (typeof TARGETS)[number];
  layout: Layout;
  /** Positions of the docstring's analysis and of the module-level mask_mod. */
  L: number;
  out?: string;
  json?: boolean;
  /** Replace an existing `out` that is not a module of ours. */
  force?: boolean;
}

/**
 * The `phd` metadata of checkpoints trained with a spec, when a checkpoint can name it: the
 * spec must be what the config's preset gives for these K, W, C (runtime/model/config.ts).
 */
function presetPhd(preset: string, spec: AttentionSpec): PhdConfig | undefined {
  if (!(preset in PRESETS)) return undefined;
  const d = DEFAULT_CONFIG.phd;
  const phd: PhdConfig = {
    K: spec.K,
    variant: preset,
    W: spec.params.W ?? d.W,
    C: spec.params.C ?? d.C,
    positions: spec.positions,
  };
  const s = configSpec(phd);
  return s.name === spec.name && s.source === spec.source ? phd : undefined;
}

function isCheckpoint(ref: string): boolean {
  return ref.endsWith(".safetensors");
}

/** The spec to export and, when checkpoints can name it, their `phd` config. */
async function exportedSpec(
  ref: string,
  f: SpecFlags,
): Promise<{ spec: AttentionSpec; phd?: PhdConfig }> {
  if (isCheckpoint(ref)) {
    const ck = await loadCheckpoint(ref);
    const spec = applySpecFlags(ck.spec, f);
    // The checkpoint's own spec (any, rebuilt from phd.mask_spec) keeps its own phd section.
    const same = spec.name === ck.spec.name && spec.source === ck.spec.source;
    return { spec, phd: same ? ck.phd : presetPhd(ck.phd.variant, spec) };
  }
  const spec = await resolveSpec(ref, f);
  // A spec file's checkpoints carry the spec itself (phd.mask_spec), so they can name it too.
  return { spec, phd: ref in PRESETS ? presetPhd(ref, spec) : phdOf(spec, ref) };
}

/**
 * Runs the command on parsed flags: checks `--out` before any work, writes the module there
 * (atomically) when given; returns the module text and the `--json` report.
 */
export async function exportCommand(
  ref: string,
  f: ExportFlags,
  argv: readonly string[],
): Promise<{ module: string; report: Record<string, unknown> }> {
  if (f.out) {
    const inputs = isCheckpoint(ref) || isSpecPath(ref) ? [{ path: ref, flag: "<spec>" }] : [];
    const out = { path: f.out, flag: "--out", what: "FlexAttention module", ours: oursFlexModule };
    await guardOutputs([out], inputs, f);
  }
  const { spec, phd } = await exportedSpec(ref, f);
  // Expressibility first: a refusal should not wait for the analysis.
  const draft = { layout: f.layout, L: f.L, analysis: "", command: "" };
  try {
    flexModule(spec, draft);
  } catch (e) {
    if (!(e instanceof FlexExportError)) throw e;
    throw new Error(`spec "${spec.name}" cannot be exported to flex: ${e.message}`);
  }
  const a = analyze(spec, { L: f.L, tile: FLEX_BLOCK, layout: f.layout });
  const checkpointPhd = phd &&
    checkpointMetadata({
      config: DEFAULT_CONFIG.model,
      phd: { ...phd, source: spec.source, mask_spec: specToJson(spec) },
      tokenizer: "bytes",
    }).phd;
  const module = flexModule(spec, {
    ...draft,
    analysis: maskSummary(a),
    command: ["deno task export", ...argv].join(" "),
    checkpointPhd,
  });
  if (f.out) await writeFileAtomic(f.out, module);
  const report = {
    target: f.to,
    layout: f.layout,
    out: f.out ?? null,
    bytes: new TextEncoder().encode(module).length,
    checkpoint_phd: checkpointPhd ?? null,
    analysis: summarize(a),
  };
  return { module, report };
}
