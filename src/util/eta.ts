/**
 * Time left for work done in uneven steps, smoothed. A sweep's points come in bursts (points
 * answered from a looser one's optimum take microseconds, hard ones seconds, and worker threads
 * post in batches), so the rate over the last few updates swings by orders of magnitude and an
 * ETA from it jumps (12 min, then 1 s). Here updates that come within `GROUP_MS` of each other
 * count as one batch, and the rate is an exponential average over time (time constant
 * `tauSeconds`) of each batch's size over the time since the previous batch: a pause before a
 * burst lowers it only as much as the burst does not make up for. Until tau has passed it is
 * the plain average since the start.
 */
export class SmoothedEta {
  private rate = 0;
  private start: number | null = null;
  /** the last batch folded into `rate`, and the one still open */
  private folded = { t: 0, done: 0 };
  private open = { t: 0, done: 0 };

  constructor(private readonly total: number, private readonly tauSeconds = 20) {}

  /** `done` items finished at `nowMs` (performance.now() by default). */
  update(done: number, nowMs = performance.now()): void {
    if (this.start === null) {
      this.start = nowMs;
      this.folded = this.open = { t: nowMs, done };
      return;
    }
    if (nowMs - this.open.t >= GROUP_MS && this.open.done > this.folded.done) this.fold();
    this.open = { t: nowMs, done };
    const elapsed = (nowMs - this.start) / 1000;
    if (elapsed > 0 && elapsed <= this.tauSeconds) this.rate = done / elapsed;
  }

  /** Close the open batch: its items over the time since the previous batch ended. */
  private fold(): void {
    const dt = (this.open.t - this.folded.t) / 1000;
    if (dt > 0 && (this.open.t - this.start!) / 1000 > this.tauSeconds) {
      const w = 1 - Math.exp(-dt / this.tauSeconds);
      this.rate += w * ((this.open.done - this.folded.done) / dt - this.rate);
    }
    this.folded = this.open;
  }

  /** Seconds left, or null while there is no rate yet. */
  seconds(): number | null {
    if (this.start === null || this.rate <= 0) return null;
    return Math.max(0, this.total - this.open.done) / this.rate;
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

/** Updates closer together than this are one batch (a worker's burst of posted points). */
const GROUP_MS = 50;
