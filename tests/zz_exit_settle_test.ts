/**
 * The last test file (test files run in path order; "zz" sorts after every folder): settles the
 * process for a clean exit on Mesa's GL backend, and does nothing on any other.
 *
 * Why (README, Tests): every thread that made an EGL call holds a thread state in libglvnd's
 * libEGL, freed by a thread-exit destructor. `deno test` runs each file on a pooled tokio thread,
 * and at exit those threads are torn down while the main thread runs libEGL's own destructor,
 * which frees the same states: a double free ("corrupted size vs. prev_size", exit 134) after
 * every test passed, seen in a core dump as pooled threads in `__nptl_deallocate_tsd` while the
 * main thread is in `_dl_fini`. So, once libEGL is loaded, this file frees its own thread's EGL
 * state (`eglReleaseThread`; the earlier files' GPU objects died with their runtimes) and waits
 * until every other pooled thread has exited on its own (tokio lets an idle one go after 10 s),
 * freeing its state while nothing races it. What exits afterwards holds no EGL state.
 */

const POOL_THREAD = "tokio-runtime-w"; // the name tokio gives its pool threads (truncated by Linux)
const WAIT_LIMIT_MS = 90_000; // a parallel run's slowest remaining file, plus the 10 s idle time

/** Names of the process's live threads (a thread that exits while listed is skipped). */
function threadNames(): string[] {
  const names: string[] = [];
  for (const t of Deno.readDirSync("/proc/self/task")) {
    try {
      names.push(Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`).trim());
    } catch {
      // exited between the listing and the read
    }
  }
  return names;
}

function eglLoaded(): boolean {
  return Deno.build.os === "linux" &&
    Deno.readTextFileSync("/proc/self/maps").includes("/libEGL.so");
}

Deno.test("exit settle: no other thread holds libEGL state when the process exits", async () => {
  if (!eglLoaded()) return; // Vulkan, a GPU driver without libglvnd, or no GPU test ran
  const egl = Deno.dlopen("libEGL.so.1", {
    eglReleaseThread: { parameters: [], result: "u32" },
  });
  try {
    if (egl.symbols.eglReleaseThread() !== 1) throw new Error("eglReleaseThread failed");
  } finally {
    egl.close(); // libEGL stays loaded: wgpu holds its own handle
  }
  // Run elsewhere than on a pooled thread (not by `deno test`), there is no pool to wait for.
  if (Deno.readTextFileSync("/proc/thread-self/comm").trim() !== POOL_THREAD) return;
  const others = () => threadNames().filter((n) => n === POOL_THREAD).length - 1;
  const start = Date.now();
  while (others() > 0 && Date.now() - start < WAIT_LIMIT_MS) {
    await new Promise((r) => setTimeout(r, 250));
  }
  const left = others();
  if (left > 0) {
    console.error(
      `exit settle: ${left} other ${POOL_THREAD} thread(s) still alive after ` +
        `${WAIT_LIMIT_MS / 1000} s; the exit may still race libEGL's teardown`,
    );
  }
});
