/// <reference lib="dom" />
/**
 * The page's plumbing: elements by id, the one error line (`#error`; uncaught errors land there
 * too), buttons whose failures go to it, and form fields read with a one-line refusal.
 */
export const $ = <T extends HTMLElement = HTMLElement>(id: string) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el as T;
};
export const input = (id: string) => $<HTMLInputElement>(id);

export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].replace(/^error: /, "");
}

export function showError(e: unknown): void {
  $("error").textContent = `error: ${firstLine(e)}`;
}

export function clearError(): void {
  $("error").textContent = "";
}

/** Runs a button's action: disables it meanwhile, reports a failure in the error line. */
export function action(id: string, f: () => Promise<void> | void): void {
  const button = $<HTMLButtonElement>(id);
  button.addEventListener("click", async () => {
    button.disabled = true;
    clearError();
    try {
      await f();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  });
}

/** An integer field's value, refused with a line naming the field and its range. */
export function intField(id: string, lo: number, hi: number): number {
  const v = Number(input(id).value);
  if (!Number.isInteger(v) || v < lo || v > hi) {
    const name = input(id).closest("label")?.textContent?.trim().split(/\s/)[0] ?? id;
    throw new RangeError(`${name} must be an integer in [${lo}, ${hi}], got "${input(id).value}"`);
  }
  return v;
}

/** A number field's value, refused with a line naming the field and what it must be. */
export function numberField(id: string, ok: (x: number) => boolean, what: string): number {
  const v = Number(input(id).value);
  if (input(id).value.trim() === "" || !ok(v)) {
    throw new RangeError(`${id} must be ${what}, got "${input(id).value}"`);
  }
  return v;
}

/** Milliseconds as text. */
export const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
/** A fraction as a percentage. */
export const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** A handler that clears the error line, runs `f`, and reports a failure there. */
export function guarded(f: () => unknown): () => Promise<void> {
  return async () => {
    clearError();
    try {
      await f();
    } catch (e) {
      showError(e);
    }
  };
}
