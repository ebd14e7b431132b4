import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paretoPlot, type PlotPoint } from '../src/report/pareto-plot.js';

// each panel has its own front: cr10 is on the BitOps front only
const points: PlotPoint[] = [
  { objective: 10, bitops: 30, sizeMb: 8, paretoBitops: true, paretoSize: true, label: 'cr8' },
  { objective: 12, bitops: 20, sizeMb: 6, paretoBitops: true, paretoSize: false, label: 'cr10' },
  { objective: 13, bitops: 25, sizeMb: 7, paretoBitops: false, paretoSize: false, label: 'cr9' },
  { objective: 15, bitops: 10, sizeMb: 4, paretoBitops: true, paretoSize: true, label: 'cr12' },
  { objective: 16, bitops: 12, sizeMb: 5, paretoBitops: false, paretoSize: false, label: 'cr11' },
];
const onFronts = points.filter((p) => p.paretoBitops).length + points.filter((p) => p.paretoSize).length;

/** Tags balance like XML: every opened element is closed, in order. */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  for (const [, closing, name, , selfClosing] of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)((?:\s+[^\s=>/]+="[^"]*")*)\s*(\/?)>/g)) {
    if (selfClosing) continue;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else stack.push(name!);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
}

/** The point marks (vega renders each as a <path> described as a point) of the SVG. */
function pointMarks(svg: string): string[] {
  return [...svg.matchAll(/<path [^>]*aria-roledescription="point"[^>]*>/g)].map((m) => m[0]);
}

test('paretoPlot is a well-formed SVG with two panels: objective against BitOps (G) and model size (MB)', async () => {
  const svg = await paretoPlot().svg(points);
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assertWellFormed(svg);
  assert.ok(svg.includes('BitOps (G)'));
  assert.ok(svg.includes('model size (MB)'));
  assert.equal(svg.match(/class="mark-symbol role-mark/g)?.length, 2, 'one point layer per panel');
});

test('paretoPlot draws one mark per point in each panel and marks the Pareto points apart', async () => {
  const svg = await paretoPlot().svg(points);
  const marks = pointMarks(svg);
  assert.equal(marks.length, 2 * points.length);
  const pareto = marks.filter((m) => /front\w*: Pareto-optimal/.test(m));
  const dominated = marks.filter((m) => /front\w*: dominated/.test(m));
  assert.equal(pareto.length, onFronts);
  assert.equal(dominated.length, 2 * points.length - onFronts);
  const fill = (mark: string) => /fill="([^"]+)"/.exec(mark)?.[1];
  const paretoFills = new Set(pareto.map(fill));
  const dominatedFills = new Set(dominated.map(fill));
  assert.equal(paretoFills.size, 1);
  assert.equal(dominatedFills.size, 1);
  assert.notDeepEqual(paretoFills, dominatedFills);
  for (const p of points) assert.ok(marks.some((m) => m.includes(`label: ${p.label}`)), `no mark for ${p.label}`);
});

test('paretoPlot connects the Pareto points with one line per panel and labels them', async () => {
  const svg = await paretoPlot().svg(points);
  const lines = [...svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>(.*?)<\/g>/g)].map((m) => m[1]!);
  assert.equal(lines.length, 2);
  // polylines through each panel's front: 3 points against BitOps, 2 against size
  const vertices = lines.map((line) => (/<path [^>]*d="([^"]+)"/.exec(line)?.[1] ?? '').match(/[ML]/g)?.length);
  assert.deepEqual(vertices, [3, 2]);
  for (const p of points.filter((q) => q.paretoBitops || q.paretoSize)) assert.ok(svg.includes(`>${p.label}</text>`), `no label ${p.label}`);
  assert.ok(!svg.includes('>cr9</text>'), 'dominated points are not labelled');
});
