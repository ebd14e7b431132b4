/**
 * Entropy (KL-divergence) calibration of an activation's clipping threshold, as TensorRT's
 * entropy calibrator (GTC 2017, "8-bit inference with TensorRT") describes it and MXNet's
 * `_get_optimal_threshold` implements it, in the one-sided |x| form of the seed's tool (seed 003,
 * `quantize/distribution_calibrate.py`) and of ncnn's `ncnn2table`:
 *
 * - `histogramOf`: a histogram of |x| over [0, maxAbs] (2048 bins in all three), zeros skipped;
 * - for each candidate i in [targetBins, bins) — the upper end excluded, as in the seed, ncnn and
 *   the GTC pseudo-code `range(128, 2048)` — the reference P is hist[0..i) with the outlier count
 *   sum(hist[i..]) added to its last bin; Q merges hist[0..i) (outliers not included) into
 *   targetBins levels, bin k going to level floor(targetBins * k / i) as in the seed's
 *   TensorRT-style `kl_calibration.py` (MXNet instead gives every level floor(i / targetBins) bins
 *   and the last level the remainder, up to targetBins - 1 extra bins, which penalises every i
 *   that is not a multiple of targetBins), and spreads each level's count evenly over the bins
 *   where P is non-zero, zero elsewhere (MXNet);
 * - P and Q are smoothed as MXNet's `_smooth_distribution` does (zeros become eps = 1e-4, the
 *   non-zeros give up the same total) and KL(P || Q) is taken between the normalised distributions;
 * - the first i of minimal divergence wins; the threshold is (i + 0.5) * binWidth (seed, ncnn).
 *
 * One departure, `maxOutliers`: candidates whose outlier count sum(hist[i..]) is above it are not
 * searched. KL weighs a value by how often it occurs, not by how far the threshold moves it, so a
 * histogram dominated by point masses — a constant image background, and the constant response of
 * each channel of the next layer to it (MNIST) — has its minimum just above the point masses,
 * clipping the rare values that carry the signal: on a 2-epoch MNIST model, 16% of the image
 * values and 8% of conv2's inputs, and top-1 falls from 95% to 15%. MXNet's, TensorRT's
 * (pytorch-quantization) and ncnn's searches clip as much there (docs/simulate.md).
 *
 * The smoothing constant is in units of counts, as in MXNet: `histogram` should hold counts.
 */

/** MXNet's smoothing constant for zero bins, in counts. */
const SMOOTHING_EPS = 1e-4;

/**
 * Histogram of |x| in `bins` equal bins over [0, maxAbs]; |x| >= maxAbs lands in the last bin.
 * Exact zeros are skipped (seed, ncnn): after a ReLU they would swamp the first bin.
 */
export function histogramOf(values: ArrayLike<number>, bins: number, maxAbs: number): Float64Array {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`histogram needs a positive whole number of bins, got ${bins}`);
  if (!(maxAbs > 0) || !Number.isFinite(maxAbs)) throw new RangeError(`histogram range maxAbs must be positive and finite, got ${maxAbs}`);
  const hist = new Float64Array(bins);
  const perUnit = bins / maxAbs;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (a === 0 || Number.isNaN(a)) continue;
    hist[Math.min(Math.floor(a * perUnit), bins - 1)]++;
  }
  return hist;
}

/**
 * KL(P || Q) for every candidate bin count i in [targetBins, bins); entry i - targetBins.
 * Infinity marks a candidate whose Q is empty or cannot be smoothed.
 */
export function klDivergences(histogram: ArrayLike<number>, targetBins = 128): Float64Array {
  const bins = histogram.length;
  if (!Number.isInteger(targetBins) || targetBins < 1 || targetBins >= bins) {
    throw new RangeError(`targetBins must be a whole number in [1, ${bins}) for a ${bins}-bin histogram, got ${targetBins}`);
  }
  // suffix[k] = sum(histogram[k..]): the outlier count of candidate k
  const suffix = new Float64Array(bins + 1);
  for (let k = bins - 1; k >= 0; k--) {
    const h = histogram[k]!;
    if (!(h >= 0) || !Number.isFinite(h)) throw new RangeError(`histogram bin ${k} is ${h}; bins must hold non-negative counts`);
    suffix[k] = suffix[k + 1]! + h;
  }
  if (suffix[0] === 0) throw new RangeError('histogram is empty: nothing to calibrate on');

  const divergences = new Float64Array(bins - targetBins);
  const p = new Float64Array(bins);
  const q = new Float64Array(bins);
  const levelCount = new Float64Array(targetBins);
  const levelNonZero = new Float64Array(targetBins);
  for (let i = targetBins; i < bins; i++) {
    for (let k = 0; k < i; k++) p[k] = histogram[k]!;
    p[i - 1] += suffix[i]!;

    // level of bin k: floor(targetBins * k / i), so level sizes differ by at most one bin
    levelCount.fill(0);
    levelNonZero.fill(0);
    for (let k = 0; k < i; k++) {
      const level = Math.floor((targetBins * k) / i);
      levelCount[level] += histogram[k]!;
      if (p[k] !== 0) levelNonZero[level]++;
    }
    for (let k = 0; k < i; k++) {
      const level = Math.floor((targetBins * k) / i);
      q[k] = p[k] === 0 ? 0 : levelCount[level]! / levelNonZero[level]!;
    }

    const pOk = smooth(p, i);
    const qOk = smooth(q, i);
    divergences[i - targetBins] = pOk && qOk ? divergence(p, q, i) : Infinity;
  }
  return divergences;
}

/**
 * The clipping threshold of minimal KL divergence: (i + 0.5) * binWidth for the winning bin count i.
 * `histogram` holds counts of |x| in bins of width `binWidth` starting at 0 (see `histogramOf`).
 * With `maxOutliers`, only candidates leaving at most that many counts in bins i and above are
 * searched; when none does (a point mass in the last bins), the threshold is the histogram's
 * top, bins * binWidth, which clips nothing.
 */
export function klThreshold(histogram: ArrayLike<number>, binWidth: number, opts: { targetBins?: number; maxOutliers?: number } = {}): number {
  if (!(binWidth > 0) || !Number.isFinite(binWidth)) throw new RangeError(`bin width must be positive and finite, got ${binWidth}`);
  const targetBins = opts.targetBins ?? 128;
  const maxOutliers = opts.maxOutliers ?? Infinity;
  if (!(maxOutliers >= 0)) throw new RangeError(`maxOutliers must be a count >= 0, got ${maxOutliers}`);
  const divergences = klDivergences(histogram, targetBins);
  let outliers = 0;
  for (let k = targetBins; k < histogram.length; k++) outliers += histogram[k]!;
  let best = -1;
  let searched = 0;
  for (let c = 0; c < divergences.length; c++) {
    if (c > 0) outliers -= histogram[c + targetBins - 1]!;
    if (outliers > maxOutliers) continue;
    searched++;
    if (divergences[c]! < (best < 0 ? Infinity : divergences[best]!)) best = c;
  }
  if (searched === 0) return histogram.length * binWidth;
  if (best < 0) throw new RangeError('no candidate threshold has a finite KL divergence; the histogram should hold counts');
  return (best + targetBins + 0.5) * binWidth;
}

/**
 * MXNet's `_smooth_distribution` on the first n entries, in place: zeros become eps and the
 * non-zeros each give up eps * zeros / nonZeros, keeping the total. False when that would leave an
 * entry non-positive (MXNet asserts) or when every entry is zero.
 */
function smooth(dist: Float64Array, n: number): boolean {
  let zeros = 0;
  for (let k = 0; k < n; k++) if (dist[k] === 0) zeros++;
  const nonZeros = n - zeros;
  if (nonZeros === 0) return false;
  const take = (SMOOTHING_EPS * zeros) / nonZeros;
  for (let k = 0; k < n; k++) {
    if (dist[k] === 0) dist[k] = SMOOTHING_EPS;
    else if ((dist[k] -= take) <= 0) return false;
  }
  return true;
}

/** KL(P || Q) of the normalised first n entries of two positive arrays (scipy.stats.entropy). */
function divergence(p: Float64Array, q: Float64Array, n: number): number {
  let sp = 0;
  let sq = 0;
  for (let k = 0; k < n; k++) {
    sp += p[k]!;
    sq += q[k]!;
  }
  let kl = 0;
  for (let k = 0; k < n; k++) {
    const pk = p[k]! / sp;
    kl += pk * Math.log(pk / (q[k]! / sq));
  }
  return kl;
}
