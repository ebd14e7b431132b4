/**
 * What a sweep's pictures cost, on the 1,000-point bench sweep of LIMPQ's ResNet-50 indicators
 * (read from ../shared, never copied): the static plot (SVG, PNG) and the explorer (build time,
 * file size), against the sweep's own solving time measured in the same run.
 *
 *   node dist/bench/sweep-view.js [--screenshots]
 *
 * `--screenshots` also writes the README's pictures into docs/ (Debian's chromium, as the tests
 * drive it): the explorer of the README's mnist-cnn sweep and of the 1,000-point sweep, and the
 * 1,000-point static plot as PNG.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { paretoPlot, svgToPng } from '../src/report/pareto-plot.js';
import { runSweep } from '../src/search/sweep.js';
import { sweepLabel } from '../src/report/sweep-files.js';
import { benchGrid, benchGridArgs } from '../test/sweep-support.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const REF = resolve(ROOT, '../shared/reference/limpq-resnet50');
const MAIN = join(ROOT, 'dist/src/cli/main.js');

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

export async function benchSweepView(screenshots = false): Promise<void> {
  if (!existsSync(join(REF, 'importance_indicators_resnet50.pkl'))) {
    console.log(`sweep view: skipped (no LIMPQ reference data at ${REF})`);
    return;
  }
  const model = join(REF, 'layers-reference-arithmetic.json');
  const pkl = join(REF, 'importance_indicators_resnet50.pkl');
  const t0 = performance.now();
  const results = await runSweep({ model, indicators: pkl, layers: {} }, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true }, benchGrid(), { solver: 'exact', jobs: 1 });
  const solveMs = performance.now() - t0;
  const points = results.filter((r) => r.objective !== null).map((r) => ({ objective: r.objective!, bitops: r.bitops!, sizeMb: r.sizeMb!, paretoBitops: r.paretoBitops, paretoSize: r.paretoSize, label: sweepLabel(r) }));
  const svgMs: number[] = [];
  const pngMs: number[] = [];
  let svg = '';
  for (let k = 0; k < 5; k++) {
    const a = performance.now();
    svg = await paretoPlot().svg(points, '1,000 points');
    const b = performance.now();
    await svgToPng(svg);
    svgMs.push(b - a);
    pngMs.push(performance.now() - b);
  }
  console.log(`sweep view: 1,000-point pareto.svg ${median(svgMs).toFixed(0)} ms (median of 5, view built and rendered; ${(svg.length / 1024).toFixed(0)} KiB), pareto.png ${median(pngMs).toFixed(0)} ms more; the sweep itself solved in ${solveMs.toFixed(0)} ms on one thread (plot/solve ${(median(svgMs) / solveMs).toFixed(2)})`);

  const dir = mkdtempSync(join(tmpdir(), 'mpq-sweep-view-'));
  const bench = join(dir, 'bench');
  const p = spawnSync(process.execPath, [MAIN, 'sweep', '--model', model, '--indicators', pkl, ...benchGridArgs(), '--out', bench, '--json'], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`mpq sweep failed: ${p.stderr}`);
  const html = statSync(join(bench, 'sweep.html')).size;
  const vega = readFileSync(join(bench, 'sweep.html'), 'utf8').match(/<script>[\s\S]*?<\/script>/g)!.slice(0, 2).reduce((n, s) => n + s.length, 0);
  console.log(`sweep view: 1,000-point sweep.html ${(html / 2 ** 20).toFixed(2)} MiB (vega and vega-embed ${(vega / 2 ** 20).toFixed(2)} MiB of it), whole sweep process ${JSON.parse(p.stdout).seconds.toFixed(2)} s solving`);

  if (screenshots) await takeScreenshots(dir, bench, svg);
}

/** The README's pictures: the explorers of the mnist-cnn sweep and of the 1,000-point one, and the static plot. */
async function takeScreenshots(dir: string, bench: string, svg: string): Promise<void> {
  const docs = join(ROOT, 'docs');
  const small = join(dir, 'small');
  const p = spawnSync(process.execPath, [MAIN, 'sweep', '--wb', '2', '3', '4', '--ab', '3', '4', '--cr', '0', '8', '12.2', '--out', small, '--quiet'], { encoding: 'utf8', cwd: ROOT });
  if (p.status !== 0) throw new Error(`mpq sweep failed: ${p.stderr}`);
  writeFileSync(join(docs, 'sweep-pareto-1000.png'), await svgToPng(svg, 1.5));
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.MPQ_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    for (const [from, name] of [[small, 'sweep-explorer-mnist.png'], [bench, 'sweep-explorer-1000.png']] as const) {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await page.goto(pathToFileURL(join(from, 'sweep.html')).href);
      await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
      // a selection, to show the table and the linked panels: a box across the middle of the BitOps front
      const area = (await page.locator('g.points_bitops_marks').boundingBox())!;
      await page.mouse.move(area.x + area.width * 0.25, area.y + area.height * 0.35);
      await page.mouse.down();
      await page.mouse.move(area.x + area.width * 0.6, area.y + area.height * 0.75, { steps: 5 });
      await page.mouse.up();
      await page.waitForTimeout(300);
      await page.locator('#table button').first().click();
      await page.screenshot({ path: join(docs, name), fullPage: false });
      await page.close();
      console.log(`sweep view: wrote docs/${name}`);
    }
  } finally {
    await browser.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSweepView(process.argv.includes('--screenshots'));
}
