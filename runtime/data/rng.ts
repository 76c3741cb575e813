/**
 * The project's one seeded PRNG (mulberry32): model initialisation, training batches, benchmark
 * and test inputs all draw from it, so a seed means the same numbers everywhere. Its whole state
 * is one u32, which a training-state file saves to resume exactly. Browser-safe.
 */

/** mulberry32: a small seeded PRNG whose whole state is one u32 (saved in training state). */
export class Rng {
  #a: number;
  /** A generator seeded with `seed` (taken as a u32). */
  constructor(seed: number) {
    this.#a = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** The state, to resume exactly. */
  get state(): number {
    return this.#a;
  }

  set state(s: number) {
    this.#a = s >>> 0;
  }
}
