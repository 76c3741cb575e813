/**
 * Training to a wall-clock deadline: `StepPlanner` turns measured step times into the total step
 * count the learning-rate schedule runs to (`train.steps`), so warm-up and cosine decay end at the
 * deadline rather than at a fixed step. Why a planned step count and not a schedule in time: the
 * learning rate stays a pure function of (config, step), as a resumed or `--steps N` run needs,
 * and a run that states its steps is reproduced by stating them again. The plan is made from the
 * time of the first steps after the first (which carries the pipeline compilation), then re-made
 * only when the projected end drifts more than `tolerance` of the budget off the deadline (a
 * shared machine's load changes): each re-plan bends the cosine a little, never back up. The
 * deadline itself is a hard stop. Pure arithmetic on times the caller measures; browser-safe.
 */

/** How a planner is set up. */
export interface StepPlannerOptions {
  /** When training must end, in the caller's clock (ms, e.g. `performance.now()`). */
  deadline: number;
  /** Steps at least, whatever the clock says (the warm-up, so the plan sees settled steps). */
  minSteps?: number;
  /** Steps at most (memory, data or the caller's own bound). Default unbounded. */
  maxSteps?: number;
  /** Fraction of the budget the projected end may drift before the plan is re-made. Default 0.1. */
  tolerance?: number;
  /** Fraction of the remaining time planned for, against slower steps later. Default 0.97. */
  safety?: number;
}

/** Plans the total steps of a run that must end by a deadline. */
export class StepPlanner {
  /** The planned total (undefined until two observations give a step time). */
  steps?: number;
  /** Times the plan was re-made after the first. */
  replans = 0;
  #origin?: { step: number; at: number };
  #budgetMs = 0;

  constructor(readonly o: StepPlannerOptions) {}

  /** Milliseconds per step since the first observation (undefined before two). */
  stepMs(step: number, at: number): number | undefined {
    const a = this.#origin;
    return a && step > a.step ? (at - a.at) / (step - a.step) : undefined;
  }

  /**
   * Records that `step` steps are done (their work finished) at time `at`; returns the planned
   * total. The first call sets the origin of the step time (call it after the first step, whose
   * time is mostly compilation).
   */
  observe(step: number, at: number): number | undefined {
    if (!this.#origin) {
      this.#origin = { step, at };
      this.#budgetMs = Math.max(0, this.o.deadline - at);
      return this.steps;
    }
    const ms = this.stepMs(step, at);
    if (ms === undefined) return this.steps;
    const left = Math.max(0, this.o.deadline - at) * (this.o.safety ?? 0.97);
    let want = step + Math.floor(left / ms);
    want = Math.max(want, this.o.minSteps ?? 0, step);
    if (this.o.maxSteps !== undefined) want = Math.min(want, this.o.maxSteps);
    if (this.steps === undefined) {
      this.steps = want;
      return want;
    }
    const drift = Math.abs(want - this.steps) * ms;
    if (drift > (this.o.tolerance ?? 0.1) * this.#budgetMs) {
      this.steps = want;
      this.replans++;
    }
    return this.steps;
  }

  /** Whether the deadline has passed at time `at`. */
  expired(at: number): boolean {
    return at >= this.o.deadline;
  }

  /** Seconds left until the deadline at time `at` (0 once passed). */
  secondsLeft(at: number): number {
    return Math.max(0, this.o.deadline - at) / 1000;
  }
}
