/**
 * The worker behind `loadSpecRef`'s deadline (runtime/host/spec_file.ts): imports a spec file,
 * finds its spec and rebuilds it with the run's overrides (each runs the declaration's mask
 * function), and posts `done` whether that worked or threw: the caller only times it, and loads
 * the file itself for the spec and its errors. A module or mask that never returns is ended by
 * the caller's `terminate()`.
 */
/// <reference lib="deno.worker" />
import { respec, specOfModule, type SpecOverrides } from "../../dsl/spec.ts";

self.onmessage = async (e: MessageEvent<{ url: string; ref: string; over?: SpecOverrides }>) => {
  try {
    const spec = specOfModule(await import(e.data.url), `spec file "${e.data.ref}"`);
    if (e.data.over) respec(spec, e.data.over);
  } catch { /* reported by the caller's own load */ }
  self.postMessage("done");
};
