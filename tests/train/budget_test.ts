/**
 * `StepPlanner` (runtime/train/budget.ts) on a simulated clock: the plan fills the time left at
 * the measured step time, holds while the projection stays within its tolerance, is re-made when
 * the steps slow down or speed up beyond it, respects its bounds, and the deadline is reported.
 */
import { ok as assert, strictEqual } from "node:assert";
import { StepPlanner } from "../../runtime/train/budget.ts";

Deno.test("the plan fills the time left at the measured step time", () => {
  const p = new StepPlanner({ deadline: 10_000, safety: 1 });
  strictEqual(p.observe(1, 1_000), undefined); // origin: after the compiling first step
  // 9 steps in 900 ms: 100 ms a step, 8100 ms left -> 81 more.
  strictEqual(p.observe(10, 1_900), 91);
  strictEqual(p.replans, 0);
  // Still 100 ms a step: the plan holds.
  strictEqual(p.observe(50, 5_900), 91);
  strictEqual(p.secondsLeft(5_900), 4.1);
  assert(!p.expired(9_999) && p.expired(10_000));
});

Deno.test("a slowdown beyond the tolerance re-plans, a small drift does not", () => {
  const p = new StepPlanner({ deadline: 11_000, safety: 1, tolerance: 0.1 });
  p.observe(1, 1_000);
  strictEqual(p.observe(11, 2_000), 101); // 100 ms a step, 9000 ms left
  // 105 ms a step since the origin: the projection moves ~4 steps (420 ms < 10% of 10 s).
  strictEqual(p.observe(21, 3_100), 101);
  // Steps at 200 ms from here: the average since the origin climbs and the plan shrinks.
  const at = 3_100 + 20 * 200;
  const got = p.observe(41, at)!;
  strictEqual(p.replans, 1);
  strictEqual(got, 41 + Math.floor((11_000 - at) / ((at - 1_000) / 40)));
});

Deno.test("the safety margin and the bounds hold", () => {
  const safe = new StepPlanner({ deadline: 11_000, safety: 0.9 });
  safe.observe(1, 1_000);
  strictEqual(safe.observe(11, 2_000), 11 + Math.floor(9_000 * 0.9 / 100));
  const capped = new StepPlanner({ deadline: 100_000, maxSteps: 50 });
  capped.observe(1, 0);
  strictEqual(capped.observe(11, 1_000), 50);
  const floor = new StepPlanner({ deadline: 1_500, minSteps: 30 });
  floor.observe(1, 0);
  strictEqual(floor.observe(11, 1_000), 30); // the warm-up is planned even when time is short
});
