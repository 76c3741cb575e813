/**
 * The KV cache's bookkeeping, driven by the compiler's retention plan rather than by presets: a
 * pool of slots, each holding the K/V of one token (the same slot in every layer) and tagged with
 * the token's (copy, pos) so that decode kernels evaluate the spec's own mask against the cache.
 * A key takes a slot when its position is computed and gives it back once no later query can read
 * it (its lifetime): PHD's hidden keys leave as soon as their token is done, SWA's after W-1 more
 * hidden tokens, CSWA's at the end of their chunk, originals never.
 */

/** Where each copy of a position was stored, and which slots its completion freed. */
export interface SlotStep {
  /** `slots[c]`: the slot of copy c of the position. */
  slots: Int32Array;
  /** Slots freed once the position was done. */
  freed: number[];
}

/** Slot bookkeeping for one sequence. */
export class KvSlots {
  /** `coords[2s]`, `coords[2s+1]`: copy and position held by slot s, or -1, -1 when free. */
  coords: Int32Array;
  #free: number[] = [];
  /** Live slots by the position after which they are freed. */
  #expiry = new Map<number, number[]>();
  #live = 0;

  /**
   * @param K copies per position
   * @param capacity initial number of slots (grows by doubling; the GPU buffers follow, see
   *   `KvCache.sync`)
   * @param lifetime last query position that may read key (c, m); Infinity to keep it
   */
  constructor(
    readonly K: number,
    capacity: number,
    readonly lifetime: (c: number, m: number) => number,
  ) {
    this.coords = new Int32Array(2 * capacity).fill(-1);
    for (let s = capacity - 1; s >= 0; s--) this.#free.push(s);
  }

  /** Number of slots (live or free). */
  get capacity(): number {
    return this.coords.length / 2;
  }

  /** Slots holding a key. */
  get live(): number {
    return this.#live;
  }

  /**
   * Stores the K keys of position n (all copies: later copies of n read earlier ones), then frees
   * every slot whose key no query after position n reads.
   */
  admit(n: number): SlotStep {
    const slots = new Int32Array(this.K);
    for (let c = 0; c < this.K; c++) {
      if (this.#free.length === 0) this.#grow();
      const s = this.#free.pop()!;
      slots[c] = s;
      this.coords[2 * s] = c;
      this.coords[2 * s + 1] = n;
      this.#live++;
      const until = Math.max(n, this.lifetime(c, n));
      if (Number.isFinite(until)) {
        const list = this.#expiry.get(until);
        if (list) list.push(s);
        else this.#expiry.set(until, [s]);
      }
    }
    const freed = this.#expiry.get(n) ?? [];
    this.#expiry.delete(n);
    for (const s of freed) {
      this.coords[2 * s] = this.coords[2 * s + 1] = -1;
      this.#free.push(s);
      this.#live--;
    }
    return { slots, freed };
  }

  #grow() {
    const old = this.capacity, next = Math.max(1, old * 2);
    const coords = new Int32Array(2 * next).fill(-1);
    coords.set(this.coords);
    this.coords = coords;
    for (let s = next - 1; s >= old; s--) this.#free.push(s);
  }
}
