/**
 * Tokenizers behind one small interface. The default (and, for now, only) one is `bytes`: UTF-8
 * bytes as token ids, vocabulary 256, the `tokenizer` value of a checkpoint's `__metadata__`
 * (DESIGN.md 4). Browser-safe (TextEncoder/TextDecoder only).
 */

/** Text to token ids and back. */
export interface Tokenizer {
  /** The name stored in checkpoints (`__metadata__.tokenizer`). */
  readonly name: string;
  readonly vocabSize: number;
  encode(text: string): Uint32Array;
  /** Ids to text; invalid sequences (e.g. a cut UTF-8 character) become U+FFFD. */
  decode(ids: ArrayLike<number>): string;
}

/** UTF-8 bytes, vocabulary 256. */
export class ByteTokenizer implements Tokenizer {
  readonly name = "bytes";
  readonly vocabSize = 256;
  #enc = new TextEncoder();
  #dec = new TextDecoder("utf-8");

  encode(text: string): Uint32Array {
    return Uint32Array.from(this.#enc.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (!(Number.isInteger(v) && v >= 0 && v < 256)) {
        throw new RangeError(`byte tokenizer: id ${v} at ${i} is outside [0, 256)`);
      }
      bytes[i] = v;
    }
    return this.#dec.decode(bytes);
  }
}

/** The tokenizer a checkpoint names. Throws one line for an unknown name. */
export function tokenizerByName(name: string): Tokenizer {
  if (name === "bytes") return new ByteTokenizer();
  throw new RangeError(`unknown tokenizer "${name}" (known: bytes)`);
}
