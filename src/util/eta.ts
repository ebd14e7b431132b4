/**
 * Time left for work done in uneven steps, smoothed. A sweep's points come in bursts (points
 * answered from a looser one's optimum take microseconds, hard ones seconds, and worker threads
 * post in batches), so the rate over the last few updates swings by orders of magnitude and an
 * ETA from it jumps (12 min, then 1 s). Here the rate is an exponential average over time with a
 * time constant of `tauSeconds`: a burst of n items raises it by about n / tau, a pause lowers it
 * gradually. Until tau has passed it is the plain average since the start.
 */
export class SmoothedEta {
  private rate = 0;
  private last: { t: number; done: number } | null = null;
  private start: number | null = null;

  constructor(private readonly total: number, private readonly tauSeconds = 5) {}

  /** `done` items finished at `nowMs` (performance.now() by default). */
  update(done: number, nowMs = performance.now()): void {
    if (this.start === null || this.last === null) {
      this.start = nowMs;
      this.last = { t: nowMs, done };
      return;
    }
    const dt = (nowMs - this.last.t) / 1000;
    const dn = done - this.last.done;
    if (dt <= 0) {
      // same instant: add the items to the next step's count
      return;
    }
    const elapsed = (nowMs - this.start) / 1000;
    if (elapsed <= this.tauSeconds) this.rate = done / elapsed;
    else {
      const w = 1 - Math.exp(-dt / this.tauSeconds);
      this.rate += w * (dn / dt - this.rate);
    }
    this.last = { t: nowMs, done };
  }

  /** Seconds left, or null while there is no rate yet. */
  seconds(): number | null {
    if (!this.last || this.rate <= 0) return null;
    return Math.max(0, this.total - this.last.done) / this.rate;
  }

  /** `ETA`-style text: `1h02m`, `3m05s`, `12s`, or `-` while unknown. */
  format(): string {
    const s = this.seconds();
    if (s === null || !Number.isFinite(s)) return '-';
    const r = Math.round(s);
    if (r >= 3600) return `${Math.floor(r / 3600)}h${String(Math.floor((r % 3600) / 60)).padStart(2, '0')}m`;
    if (r >= 60) return `${Math.floor(r / 60)}m${String(r % 60).padStart(2, '0')}s`;
    return `${r}s`;
  }
}
