/// <reference lib="dom" />
/**
 * The page's WebGPU device, requested once on first use; the adapter's name goes to `#adapter`,
 * and a missing WebGPU becomes advice for a browser (the runtime's names Deno's backends).
 */
import { createContext, type KernelContext } from "../core.ts";
import { $, firstLine, showError } from "./dom.ts";

let context: Promise<KernelContext> | undefined;

/** The device and pipeline cache (a failed request is tried again on the next call). */
export function gpu(): Promise<KernelContext> {
  context ??= createContext({
    onError: (m) => {
      console.error(`WebGPU error: ${m}`);
      if (!$("error").textContent?.startsWith("error: WebGPU")) showError(`WebGPU: ${m}`);
    },
  }).then((ctx) => {
    $("adapter").textContent = `WebGPU adapter: ${ctx.gpu.adapterName}` +
      `${ctx.gpu.f16 ? ", shader-f16" : ""}${ctx.gpu.timestamps ? ", timestamps" : ""}`;
    return ctx;
  }, (e) => {
    context = undefined; // a later click may try again
    $("adapter").textContent = "WebGPU adapter: none";
    // The runtime's advice names Deno's backends; a page needs the browser's.
    const m = firstLine(e);
    if (/no navigator\.gpu|no WebGPU adapter/.test(m)) {
      throw new Error(
        `${m.split(":")[0]}: use a browser with WebGPU enabled (e.g. a recent Chrome or Edge) ` +
          `with hardware acceleration on, or start Chromium with ` +
          `--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader`,
      );
    }
    throw e;
  });
  return context;
}
