/**
 * The playground's spec editor: CodeMirror 6 (npm, pinned) with TypeScript highlighting, line
 * numbers, bracket matching and undo, and a spec's error marked at its line (a lint diagnostic
 * with the message, and the line's gutter marker). `specErrorLine` finds that line: the parser's
 * `(line:column)`; for a causality error, the `mask:` line; else the line that names what the
 * message quotes; else the `mask:` line.
 */
import { basicSetup, EditorView } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { type Diagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";

/** The editor as the page uses it. */
export interface SpecEditor {
  /** The source as it is now. */
  readonly value: string;
  /** Replaces the whole source (a picked example). */
  setValue(source: string): void;
  /** Marks `message` at its line of the current source (see `specErrorLine`). */
  markError(message: string): void;
  clearError(): void;
}

/** An editor in `parent` holding `source`; `onChange` runs after every edit. */
export function createSpecEditor(
  parent: HTMLElement,
  source: string,
  onChange: () => void,
): SpecEditor {
  const view = new EditorView({
    doc: source,
    parent,
    extensions: [
      basicSetup,
      javascript({ typescript: true }),
      lintGutter(),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChange();
      }),
    ],
  });
  const diagnose = (diagnostics: Diagnostic[]) =>
    view.dispatch(setDiagnostics(view.state, diagnostics));
  return {
    get value() {
      return view.state.doc.toString();
    },
    setValue(text: string) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    markError(message: string) {
      const doc = view.state.doc;
      const line = doc.line(Math.min(specErrorLine(doc.toString(), message), doc.lines));
      diagnose([{ from: line.from, to: line.to, severity: "error", message }]);
      parent.dataset.errorLine = String(line.number);
    },
    clearError() {
      diagnose([]);
      delete parent.dataset.errorLine;
    },
  };
}

/** The 1-based line of `source` an error message is about (1 when nothing points anywhere). */
export function specErrorLine(source: string, message: string): number {
  const lines = source.split("\n");
  const at = message.match(/\((\d+):\d+\)/);
  if (at) return Math.max(1, Math.min(Number(at[1]), lines.length));
  const find = (re: RegExp) => lines.findIndex((l) => re.test(l)) + 1;
  if (/ is not causal/.test(message)) return find(/\bmask\s*:/) || 1;
  for (const quoted of message.matchAll(/"([A-Za-z_$][\w$]*)"/g)) {
    const i = find(new RegExp(`\\b${quoted[1].replace("$", "\\$")}\\b`));
    if (i > 0) return i;
  }
  return find(/\bmask\s*:/) || 1;
}
