import cliProgress from 'cli-progress';

/**
 * A progress bar on stderr: step, loss and accuracy (one per bit-width in joint pretraining),
 * images per second and ETA. Off a terminal it prints a line every few seconds instead of redrawing.
 */
export class ProgressBar {
  private readonly bar: cliProgress.SingleBar;

  constructor(private readonly enabled: boolean) {
    this.bar = new cliProgress.SingleBar({
      format: '{label} |{bar}| {value}/{total} | {metrics} | {speed} img/s | ETA {eta_formatted}',
      stream: process.stderr,
      barsize: 20,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 10_000,
      etaBuffer: 20,
    });
  }

  start(total: number, label: string): void {
    if (this.enabled) this.bar.start(total, 0, { label, metrics: '', speed: '-' });
  }

  update(step: number, metrics: string, imagesPerSecond: number): void {
    if (this.enabled) this.bar.update(step, { metrics, speed: imagesPerSecond.toFixed(0) });
  }

  stop(): void {
    if (this.enabled) this.bar.stop();
  }
}
