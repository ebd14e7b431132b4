import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SmoothedEta } from '../src/util/eta.js';
import { Prng } from '../src/util/prng.js';

/**
 * A sweep's pace: 2,000 points at 20 points/s on average, but in bursts: a worker posts a batch of
 * 1–40 points at once (reused points take microseconds), then nothing for up to 3 s.
 */
function burstyRun(seed: number): { t: number; done: number }[] {
  const rng = new Prng(seed);
  const steps: { t: number; done: number }[] = [];
  let t = 0, done = 0;
  while (done < 2000) {
    const batch = 1 + rng.int(40);
    t += (batch / 20) * (0.2 + 1.6 * rng.next()); // on average batch / 20 s
    for (let k = 0; k < batch && done < 2000; k++) steps.push({ t: t * 1000 + k * 0.001, done: ++done });
  }
  return steps;
}

/** Mean relative error of the ETA against the time really left, and the largest ratio between two consecutive ETAs. */
function score(steps: { t: number; done: number }[], eta: (done: number, t: number) => number | null) {
  const end = steps[steps.length - 1].t;
  let err = 0, n = 0, jump = 1, previous: number | null = null;
  for (const { t, done } of steps) {
    const s = eta(done, t);
    const left = (end - t) / 1000;
    if (t < 10_000 || left < 10) continue; // past the first seconds and before the very end
    assert.ok(s !== null && Number.isFinite(s), `no ETA at ${t} ms`);
    err += Math.abs(s - left) / left;
    n++;
    if (previous !== null) jump = Math.max(jump, s / previous, previous / s);
    previous = s;
  }
  return { err: err / n, jump };
}

test('smoothed ETA: on bursty progress it stays near the time really left and never jumps', () => {
  for (const seed of [1, 2, 3]) {
    const steps = burstyRun(seed);
    const smoothed = new SmoothedEta(2000);
    smoothed.update(0, 0);
    const ours = score(steps, (done, t) => (smoothed.update(done, t), smoothed.seconds()));
    // the rate over the last 10 updates, as the progress bar computed it before
    const last: { t: number; done: number }[] = [];
    const windowed = score(steps, (done, t) => {
      last.push({ t, done });
      if (last.length > 10) last.shift();
      return (2000 - done) / ((done - last[0].done) / Math.max((t - last[0].t) / 1000, 1e-6));
    });
    assert.ok(ours.err < 0.25, `seed ${seed}: mean error ${ours.err.toFixed(3)}`);
    assert.ok(ours.jump < 1.5, `seed ${seed}: the ETA changed ${ours.jump.toFixed(2)}x from one update to the next`);
    assert.ok(windowed.jump > 100 && windowed.err > 5 * ours.err, `seed ${seed}: the 10-update window: error ${windowed.err.toFixed(2)}, jump ${windowed.jump.toFixed(0)}x`);
  }
});

test('smoothed ETA: unknown before progress, formatted as h/m/s', () => {
  const eta = new SmoothedEta(100);
  assert.equal(eta.format(), '-');
  eta.update(0, 0);
  assert.equal(eta.format(), '-');
  eta.update(10, 1000); // 10 points/s, 90 left
  assert.equal(eta.format(), '9s');
  const slow = new SmoothedEta(100_000);
  slow.update(0, 0);
  slow.update(1, 1000);
  assert.equal(slow.format(), '27h46m');
  const mid = new SmoothedEta(200);
  mid.update(0, 0);
  mid.update(1, 1000);
  assert.equal(mid.format(), '3m19s');
});
