/**
 * The sweep explorer (sweep.html) in a real browser: Debian's chromium, driven by playwright-core.
 * Skipped, saying why, where chromium is not installed (`apt-get install chromium`; CI installs it;
 * MPQ_CHROMIUM names another chromium binary).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { HAS_REFERENCE, REFERENCE_DIR, runCli, tempDir, writeTinySearchInputs } from './support.js';
import { benchGridArgs } from './sweep-support.js';

/** Debian's chromium, or the browser named by MPQ_CHROMIUM */
const CHROMIUM = process.env.MPQ_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = existsSync(CHROMIUM) ? false : `no browser: ${CHROMIUM} is not installed (apt-get install chromium, or set MPQ_CHROMIUM)`;
const noReference = noBrowser || (HAS_REFERENCE ? false : `no LIMPQ reference data at ${REFERENCE_DIR}`);

interface Point { index: number; status: string; objective: number | null; bitops: number | null; size_mb: number | null; wb: number; ab: number; cr: number; pareto_bitops: boolean; pareto_size: boolean; weight_bits: number[] | null }
interface Sweep { summary: Record<string, number>; points: Point[] }

const dir = tempDir('mpq-explorer-');
let browser: Browser | undefined;

before(async () => {
  if (noBrowser) return;
  const { chromium } = await import('playwright-core');
  // playwright gives each launch a fresh, empty profile; the flags keep chromium off the network
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => browser?.close());

/** Open a sweep's explorer; every request other than the file itself, and every console error, is recorded. */
async function open(out: string): Promise<{ page: Page; sweep: Sweep; problems: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('request', (r) => !r.url().startsWith('file:') && problems.push(`request: ${r.url()}`));
  await page.goto(pathToFileURL(join(out, 'sweep.html')).href);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60_000 });
  return { page, sweep: JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')), problems };
}

const marks = (page: Page, panel: 'bitops' | 'size') => page.locator(`g.points_${panel}_marks > path`);
const frontMarks = (page: Page, panel: 'bitops' | 'size') => page.locator(`g.points_${panel}_marks > path[aria-label*="kind: Pareto front"]`);
const tableIndices = async (page: Page) => (await page.locator('#table tr[data-index]').evaluateAll((rows) => rows.map((r) => Number((r as HTMLElement).dataset.index)))).sort((a, b) => a - b);

/** What every explorer must show: one mark per feasible point in each panel, the fronts as sweep.json has them, labels apart. */
async function checkMarks(page: Page, sweep: Sweep): Promise<void> {
  const feasible = sweep.points.filter((p) => p.objective !== null).length;
  assert.equal(await marks(page, 'bitops').count(), feasible);
  assert.equal(await marks(page, 'size').count(), feasible);
  assert.equal(await frontMarks(page, 'bitops').count(), sweep.summary.pareto_bitops);
  assert.equal(await frontMarks(page, 'size').count(), sweep.summary.pareto_size);
  // the labels, measured by the browser with its fonts: none overlaps another (by a pixel or more:
  // the browser's box is the line's, a pixel taller than the glyphs vega places)
  const boxes = await page.locator('g[class*="labels_"] > text').evaluateAll((texts) => texts
    .filter((t) => getComputedStyle(t).opacity !== '0' && t.getAttribute('opacity') !== '0')
    .map((t) => { const b = t.getBoundingClientRect(); return { text: t.textContent, x1: b.left, y1: b.top, x2: b.right, y2: b.bottom }; }));
  assert.ok(boxes.length > 0, 'some labels');
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, b] = [boxes[i], boxes[j]];
    const overlap = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1) >= 1 && Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1) >= 1;
    assert.ok(!overlap, `labels '${a.text}' and '${b.text}' overlap: ${JSON.stringify([a, b])}`);
  }
}

/** Hover a front mark: the tooltip names its budgets, objective and bits. */
async function checkTooltip(page: Page, sweep: Sweep): Promise<void> {
  const mark = frontMarks(page, 'bitops').last();
  const label = (await mark.getAttribute('aria-label'))!;
  const objective = Number(/objective[^:]*: ([\d.e-]+)/.exec(label)![1]);
  const box = (await mark.boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const tooltip = page.locator('#vg-tooltip-element');
  await tooltip.waitFor({ state: 'visible', timeout: 10_000 });
  const text = (await tooltip.textContent())!;
  const candidates = sweep.points.filter((p) => p.objective !== null && Math.abs(p.objective - objective) < 1e-9);
  assert.ok(candidates.length > 0);
  assert.ok(candidates.some((p) => text.includes(`W${p.wb}A${p.ab}`) && text.includes(p.weight_bits!.join(' '))), `tooltip: ${text}`);
  for (const field of ['budgets', 'objective', 'BitOps (G)', 'size (MB)', 'weight bits', 'activation bits']) assert.ok(text.includes(field), `tooltip without ${field}: ${text}`);
  await page.mouse.move(1, 1);
}

/** Click a mark: the table lists that point alone; its command button shows `mpq search … --out`. */
async function checkClick(page: Page, sweep: Sweep): Promise<void> {
  const mark = marks(page, 'size').first();
  const objective = Number(/objective[^:]*: ([\d.e-]+)/.exec((await mark.getAttribute('aria-label'))!)![1]);
  const box = (await mark.boundingBox())!;
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => document.querySelectorAll('#table tr[data-index]').length === 1);
  const [index] = await tableIndices(page);
  assert.ok(Math.abs(sweep.points[index].objective! - objective) < 1e-9, 'the table lists the clicked point');
  await page.locator('#table button').click();
  const command = (await page.locator('#command').textContent())!;
  assert.match(command, new RegExp(`^mpq search .*--weight-bits ${sweep.points[index].wb} --act-bits ${sweep.points[index].ab} --cr ${sweep.points[index].cr} --out$`));
  // a click on an empty place selects none: the table is back to the Pareto points
  const area = (await page.locator('g.points_size_marks').boundingBox())!;
  await page.mouse.click(area.x + 2, area.y + area.height - 2); // below and left of the front: nothing there
  await page.waitForFunction(() => document.querySelector('#table-title')!.textContent!.startsWith('Nothing selected'));
}

/** Drag a box in the BitOps panel: the table lists exactly the points inside it, and both panels show them. */
async function checkBrush(page: Page, sweep: Sweep): Promise<void> {
  const area = (await page.locator('g.points_bitops_marks').boundingBox())!;
  await page.mouse.move(area.x + area.width * 0.3, area.y + area.height * 0.2);
  await page.mouse.down();
  await page.mouse.move(area.x + area.width * 0.8, area.y + area.height * 0.9, { steps: 5 });
  await page.mouse.up();
  const brush = await page.evaluate(() => (globalThis as unknown as { sweepView: { signal(n: string): unknown } }).sweepView.signal('brush')) as Record<string, [number, number]>;
  assert.deepEqual(Object.keys(brush).sort(), ['bitops', 'objective']);
  const inside = (v: number, [a, b]: [number, number]) => v >= Math.min(a, b) && v <= Math.max(a, b);
  const expected = sweep.points.filter((p) => p.objective !== null && inside(p.bitops!, brush.bitops) && inside(p.objective, brush.objective)).map((p) => p.index);
  assert.ok(expected.length > 0, 'the box holds some points');
  await page.waitForFunction((n) => document.querySelectorAll('#table tr[data-index]').length === n, expected.length);
  assert.deepEqual(await tableIndices(page), expected);
  // linked: the selected points are outlined in the size panel too
  assert.equal(await page.locator('g.points_size_marks > path[stroke="black"]').count(), expected.length);
  // a double-click clears the box
  await page.mouse.dblclick(area.x + area.width * 0.5, area.y + area.height * 0.5);
  await page.waitForFunction(() => document.querySelector('#table-title')!.textContent!.startsWith('Nothing selected'));
}

/** Filter by one value of --wb: only its points are drawn. */
async function checkFilter(page: Page, sweep: Sweep): Promise<void> {
  const wb = [...new Set(sweep.points.map((p) => p.wb))].sort((a, b) => a - b)[1];
  await page.locator('select[name=wb]').selectOption(String(wb));
  const expected = sweep.points.filter((p) => p.objective !== null && p.wb === wb).length;
  await page.waitForFunction((n) => document.querySelectorAll('g.points_bitops_marks > path').length === n, expected);
  await page.locator('select[name=wb]').selectOption('all');
}

async function checkExplorer(out: string, screenshot: string): Promise<void> {
  const { page, sweep, problems } = await open(out);
  try {
    await checkMarks(page, sweep);
    await checkTooltip(page, sweep);
    await checkClick(page, sweep);
    await checkBrush(page, sweep);
    await checkFilter(page, sweep);
    const png = join(dir, screenshot);
    await page.screenshot({ path: png, fullPage: true });
    assert.ok(statSync(png).size > 20_000, 'a screenshot with something on it');
    assert.deepEqual(problems, [], 'no console errors, no network requests');
  } finally {
    await page.close();
  }
}

test('explorer of a small sweep (18 points, some infeasible): marks, fronts, tooltip, click, brush, filter, command, no network', { skip: noBrowser }, async () => {
  const { model, indicators } = writeTinySearchInputs(dir);
  const out = join(dir, 'small');
  const r = runCli(['sweep', '--model', model, '--indicators', indicators, '--wb', '2', '3', '4', '--ab', '2', '4', '--cr', '0', '8', '30', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  await checkExplorer(out, 'small.png');
});

test('explorer of the 1,000-point bench sweep (LIMPQ ResNet-50): the same, at 1,000 points', { skip: noReference }, async () => {
  const out = join(dir, 'bench');
  const r = runCli(['sweep', '--model', join(REFERENCE_DIR, 'layers-reference-arithmetic.json'), '--indicators', join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'), ...benchGridArgs(), '--out', out, '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  await checkExplorer(out, 'bench.png');
});
