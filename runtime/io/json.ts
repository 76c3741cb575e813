/**
 * JSON parsing for the files the project reads (safetensors headers and metadata, config files):
 * a parse failure is one line. V8's SyntaxError quotes the text around the fault, and that text
 * can hold newlines (a multi-line config file, a mutated checkpoint), so its whitespace is
 * collapsed (docs/DESIGN.md 3: bad input gets one error line).
 */

/** `JSON.parse(text)`, or a one-line SyntaxError "`what` is not JSON: <reason>". */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const why = (e as Error).message.replace(/\s+/g, " ");
    throw new SyntaxError(`${what} is not JSON: ${why}`);
  }
}
