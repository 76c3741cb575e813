/**
 * What a generated attention kernel hands whoever dispatches it (the runtime, or `deno task
 * compile`'s manifest), with no GPU API: its source, entry point, workgroup size and bindings, and
 * the layout of its uniform buffer; and the WGSL of that interface (`interfaceWgsl`). A kernel family declares its uniform fields once, as a table of
 * (name, WGSL type); the WGSL struct, the host-side packing and the manifest's field list are all
 * generated from that table, so the three can never disagree. Also the head-dim check both
 * families share.
 */
import { type SpecCode, specUniformFields } from "./wgsl_expr.ts";

/** A generated kernel, ready for a pipeline. */
export interface KernelSource {
  /** Cache key: the family and every parameter baked into the code, nothing else. */
  key: string;
  /** Human-readable name for pipeline labels and error messages. */
  label: string;
  /** The WGSL source. */
  code: string;
  /** The `@compute` function. */
  entryPoint: string;
  /** Invocations per workgroup (`@workgroup_size`). */
  workgroupSize: number;
  /** Storage buffers at bindings 1.. of group 0, in order (binding 0 is the uniform buffer `U`). */
  bindings: string[];
  /** Layout of the uniform buffer `U`. */
  uniforms: UniformLayout;
}

/** Head dims the attention kernels accept: multiples of 4 (vec4 loads) within a sane range. */
export function checkHeadDim(d: number): void {
  if (!Number.isInteger(d) || d < 4 || d > 256 || d % 4 !== 0) {
    throw new RangeError(`head dim must be a multiple of 4 in [4, 256], got ${d}`);
  }
}

/** WGSL type of a uniform field; every field is 4 bytes, so the struct has no padding. */
export type UniformType = "i32" | "u32" | "f32";

/** One field of a uniform table. */
export interface UniformField<N extends string = string> {
  /** Field name in the WGSL struct. */
  name: N;
  /** WGSL type of the field (4 bytes). */
  type: UniformType;
}

/** A family's fixed fields in buffer order: `i32` unless `types` says otherwise. */
export function uniformTable<const F extends string>(
  names: readonly F[],
  types: { readonly [K in F]?: UniformType } = {},
): readonly UniformField<F>[] {
  return names.map((name) => ({ name, type: types[name] ?? "i32" }));
}

/** A kernel's uniform buffer: the family's fixed fields, then the spec's (all `i32`). */
export interface UniformLayout<F extends string = string> {
  /** The family's own fields, in buffer order. */
  fixed: readonly UniformField<F>[];
  /** The spec's parameters and table extents (`specUniformFields`), after the fixed fields. */
  spec: readonly string[];
}

/** The uniform layout of a family's table for a spec. */
export function uniformLayout<F extends string>(
  fixed: readonly UniformField<F>[],
  spec: SpecCode,
): UniformLayout<F> {
  return { fixed, spec: specUniformFields(spec) };
}

/** Every field in buffer order with its byte offset, and the buffer size (a multiple of 16). */
export function uniformFields(
  l: UniformLayout,
): { fields: { name: string; type: UniformType; offset: number }[]; bytes: number } {
  const all: UniformField[] = [
    ...l.fixed,
    ...l.spec.map((name) => ({ name, type: "i32" as const })),
  ];
  return {
    fields: all.map((f, i) => ({ name: f.name, type: f.type, offset: 4 * i })),
    bytes: Math.ceil(all.length / 4) * 16,
  };
}

/**
 * `struct Uniforms { ... }`. The spec's fields form one block after the fixed ones (an empty line
 * when the spec has none: kept so that the sources, and the tuning cache's hashes of them, stay as
 * they were).
 */
export function uniformStruct(l: UniformLayout): string {
  return [
    "struct Uniforms {",
    ...l.fixed.map((f) => `  ${f.name}: ${f.type},`),
    l.spec.map((f) => `  ${f}: i32,`).join("\n"),
    "}",
  ].join("\n");
}

/** A storage buffer of a kernel (group 0, bindings 1.. in order). */
export interface StorageBinding {
  name: string;
  access: "read" | "read_write";
  /** WGSL element type of the array. */
  element: string;
}

/** A kernel's interface in WGSL: the uniform struct, `U` at binding 0, the storage buffers at 1... */
export function interfaceWgsl(uniforms: UniformLayout, storage: readonly StorageBinding[]): string {
  return [
    uniformStruct(uniforms),
    "@group(0) @binding(0) var<uniform> U: Uniforms;",
    ...storage.map((b, i) =>
      `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.element}>;`
    ),
  ].join("\n");
}

/**
 * The uniform buffer's bytes: `fixed` holds a value per fixed field, `spec` the spec's values in
 * `UniformLayout.spec` order (`packSpecBindings(...).fields`).
 */
export function packUniforms<F extends string>(
  l: UniformLayout<F>,
  fixed: Readonly<Record<F, number>>,
  spec: readonly number[],
): Uint8Array {
  if (spec.length !== l.spec.length) {
    throw new RangeError(`${l.spec.length} spec uniform values expected, got ${spec.length}`);
  }
  const { fields, bytes } = uniformFields(l);
  const values = [...l.fixed.map((f) => fixed[f.name]), ...spec];
  const out = new Uint8Array(bytes), view = new DataView(out.buffer);
  fields.forEach((f, i) => {
    const v = values[i];
    if (f.type === "f32") return view.setFloat32(f.offset, v, true);
    const [lo, hi] = f.type === "u32" ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`uniform ${f.name} = ${v} is not a ${f.type}`);
    }
    if (f.type === "u32") view.setUint32(f.offset, v, true);
    else view.setInt32(f.offset, v, true);
  });
  return out;
}
