import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { paretoPlot, svgToPng, type PlotPoint } from '../src/report/pareto-plot.js';
import { markPareto, runSweep, type SweepResult } from '../src/search/sweep.js';
import { sweepLabel } from '../src/report/sweep-files.js';
import { Prng } from '../src/util/prng.js';
import { HAS_REFERENCE, REFERENCE_DIR } from './support.js';
import { benchGrid } from './sweep-support.js';

// each panel has its own front: cr10 is on the BitOps front only; cr8b is the same policy as cr8
const points: PlotPoint[] = [
  { objective: 10, bitops: 30, sizeMb: 8, paretoBitops: true, paretoSize: true, label: 'cr8' },
  { objective: 10, bitops: 30, sizeMb: 8, paretoBitops: true, paretoSize: true, label: 'cr8b' },
  { objective: 12, bitops: 20, sizeMb: 6, paretoBitops: true, paretoSize: false, label: 'cr10' },
  { objective: 13, bitops: 25, sizeMb: 7, paretoBitops: false, paretoSize: false, label: 'cr9' },
  { objective: 15, bitops: 10, sizeMb: 4, paretoBitops: true, paretoSize: true, label: 'cr12' },
  { objective: 16, bitops: 12, sizeMb: 5, paretoBitops: false, paretoSize: false, label: 'cr11' },
];
const NOTE = '6 points: 4 solved, 2 reused; 6 feasible (5 policies), 0 infeasible';

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

/** The point marks of one panel's points layer, in drawing order. */
function pointMarks(svg: string, panel: 'bitops' | 'size'): string[] {
  const layer = new RegExp(`<g class="mark-symbol role-mark points_${panel}_marks"[^>]*>(.*?)</g>`).exec(svg)?.[1] ?? '';
  return [...layer.matchAll(/<path [^>]*aria-roledescription="point"[^>]*>/g)].map((m) => m[0]);
}

interface Label { text: string; x: number; y: number; anchor: string; fontSize: number; fontFamily: string }

/**
 * The visible labels of the front layers, at their place in the whole picture: vega nests marks in
 * groups moved by `translate`, so the offsets of the open groups add up.
 */
function visibleLabels(svg: string): Label[] {
  const labels: Label[] = [];
  const offsets: [number, number][] = [[0, 0]];
  let inLabels = 0;
  const translate = (tag: string): [number, number] => {
    const m = /transform="translate\(([-\d.e]+),([-\d.e]+)\)"/.exec(tag);
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  };
  for (const m of svg.matchAll(/<(\/?)(g|text)\b([^>]*)>([^<]*)/g)) {
    const [, closing, name, attrs, content] = m;
    if (name === 'g') {
      if (closing) {
        offsets.pop();
        if (inLabels) inLabels--;
      } else {
        const [x, y] = translate(attrs!);
        const [px, py] = offsets[offsets.length - 1];
        offsets.push([px + x, py + y]);
        if (inLabels || /class="mark-text role-mark labels_/.test(attrs!)) inLabels++;
      }
    } else if (!closing && inLabels && !/opacity="0"/.test(attrs!)) {
      const [x, y] = translate(attrs!);
      const [px, py] = offsets[offsets.length - 1];
      labels.push({
        text: content!.replace(/&amp;/g, '&').replace(/&lt;/g, '<'),
        x: px + x,
        y: py + y,
        anchor: /text-anchor="(\w+)"/.exec(attrs!)?.[1] ?? 'start',
        fontSize: Number(/font-size="([\d.]+)px"/.exec(attrs!)?.[1] ?? 11),
        fontFamily: /font-family="([^"]+)"/.exec(attrs!)?.[1] ?? 'sans-serif',
      });
    }
  }
  return labels;
}

/** A label's box as resvg draws it with the system's fonts: the glyphs' real extent, not an estimate. */
function inkBox(l: Label, width: number, height: number): { x1: number; y1: number; x2: number; y2: number } {
  const esc = l.text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const one = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><text x="${l.x}" y="${l.y}" text-anchor="${l.anchor}" font-family="${l.fontFamily}" font-size="${l.fontSize}px">${esc}</text></svg>`;
  const box = new Resvg(one, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).getBBox();
  assert.ok(box, `label '${l.text}' draws nothing: no font?`);
  return { x1: box.x, y1: box.y, x2: box.x + box.width, y2: box.y + box.height };
}

function assertNoLabelOverlaps(svg: string): number {
  const width = Number(/<svg [^>]*width="([\d.]+)"/.exec(svg)![1]);
  const height = Number(/<svg [^>]*height="([\d.]+)"/.exec(svg)![1]);
  const labels = visibleLabels(svg);
  const boxes = labels.map((l) => inkBox(l, width, height));
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i];
    assert.ok(a.x1 >= 0 && a.y1 >= 0 && a.x2 <= width && a.y2 <= height, `label '${labels[i].text}' leaves the picture`);
    for (let j = i + 1; j < boxes.length; j++) {
      const b = boxes[j];
      const overlap = a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
      assert.ok(!overlap, `labels '${labels[i].text}' and '${labels[j].text}' overlap: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
    }
  }
  return labels.length;
}

test('pareto plot: a well-formed SVG, two panels with units, one legend, the note under the title', async () => {
  const svg = await paretoPlot().svg(points, NOTE);
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assertWellFormed(svg);
  for (const text of ['BitOps (G, whole model)', 'model size (MB)', 'objective (summed importance; lower is better)', NOTE]) assert.ok(svg.includes(`>${text}</text>`), text);
  assert.equal(svg.match(/class="mark-group role-legend"/g)?.length, 1, 'one legend for colour and shape');
  for (const entry of ['Pareto front', 'dominated']) assert.equal(svg.match(new RegExp(`>${entry}</text>`, 'g'))?.length, 1, entry);
});

test('pareto plot: every point in each panel, the front drawn last, larger and in its own colour', async () => {
  const svg = await paretoPlot().svg(points, NOTE);
  for (const panel of ['bitops', 'size'] as const) {
    const marks = pointMarks(svg, panel);
    assert.equal(marks.length, points.length, panel);
    const onFront = points.filter((p) => (panel === 'bitops' ? p.paretoBitops : p.paretoSize)).length;
    const isFront = (m: string) => m.includes('kind: Pareto front');
    assert.equal(marks.filter(isFront).length, onFront, panel);
    // dominated first: none comes after a front point
    assert.equal(marks.findIndex(isFront), marks.length - onFront, `${panel}: the front is drawn over the rest`);
    const fill = (m: string) => /fill="([^"]+)"/.exec(m)![1];
    assert.equal(new Set(marks.filter(isFront).map(fill)).size, 1);
    assert.notEqual(fill(marks.find(isFront)!), fill(marks.find((m) => !isFront(m))!));
  }
});

test('pareto plot: a step line through each front; labels on the front only, one per policy, saying how many budgets gave it', async () => {
  const svg = await paretoPlot().svg(points, NOTE);
  assert.equal(svg.match(/<g class="mark-line role-mark/g)?.length, 2);
  const labels = visibleLabels(svg).map((l) => l.text).sort();
  // BitOps front: cr8 (with cr8b), cr10, cr12; size front: cr8 (with cr8b), cr12
  assert.deepEqual(labels, ['cr10', 'cr12', 'cr12', 'cr8 (+1)', 'cr8 (+1)']);
});

test('pareto plot: dominated points get small and faint above 60 points', async () => {
  const rng = new Prng(1);
  const many: PlotPoint[] = Array.from({ length: 100 }, (_, i) => ({ objective: 1 + rng.next(), bitops: 1 + rng.next(), sizeMb: 1 + rng.next(), paretoBitops: false, paretoSize: false, label: `p${i}` }));
  markFronts(many);
  const opacity = (svg: string) => new Set(pointMarks(svg, 'bitops').filter((m) => m.includes('kind: dominated')).map((m) => /opacity="([\d.]+)"/.exec(m)![1]));
  assert.deepEqual(opacity(await paretoPlot().svg(points, NOTE)), new Set(['0.7']));
  assert.deepEqual(opacity(await paretoPlot().svg(many, NOTE)), new Set(['0.35']));
});

/** Set the fronts of plain points as a sweep would (markPareto on stand-in results). */
function markFronts(ps: PlotPoint[]): void {
  const results = ps.map((p) => ({ objective: p.objective, bitops: p.bitops, sizeMb: p.sizeMb, paretoBitops: false, paretoSize: false }) as SweepResult);
  markPareto(results);
  ps.forEach((p, i) => Object.assign(p, { paretoBitops: results[i].paretoBitops, paretoSize: results[i].paretoSize }));
}

test('markPareto: a point is on a front exactly when no other is as low on objective and cost and lower on one, ties included', () => {
  const rng = new Prng(7);
  for (let trial = 0; trial < 30; trial++) {
    // few distinct values, so that equal objectives and equal costs are common
    const results = Array.from({ length: 1 + rng.int(60) }, () => rng.next() < 0.1
      ? ({ objective: null, bitops: null, sizeMb: null, paretoBitops: false, paretoSize: false }) as unknown as SweepResult
      : ({ objective: rng.int(8), bitops: rng.int(8), sizeMb: rng.int(8) / 4, paretoBitops: false, paretoSize: false }) as SweepResult);
    markPareto(results);
    const solved = results.filter((r) => r.objective !== null);
    const beaten = (r: SweepResult, cost: (x: SweepResult) => number) => solved.some((q) =>
      q.objective! <= r.objective! && cost(q) <= cost(r) && (q.objective! < r.objective! || cost(q) < cost(r)));
    for (const r of results) {
      assert.equal(r.paretoBitops, r.objective !== null && !beaten(r, (x) => x.bitops!), `trial ${trial}`);
      assert.equal(r.paretoSize, r.objective !== null && !beaten(r, (x) => x.sizeMb!), `trial ${trial}`);
    }
    assert.ok(solved.length === 0 || solved.some((r) => r.paretoBitops));
  }
});

test('pareto plot at 1,000 points on a dense front: no two visible labels overlap, drawn with real fonts', async () => {
  // 400 points on a smooth front (BitOps and size both falling as the objective rises), 600 above it
  const rng = new Prng(18);
  const cloud: PlotPoint[] = Array.from({ length: 1000 }, (_, i) => {
    const t = rng.next();
    const above = i >= 400 ? 0.5 * rng.next() : 0;
    return { objective: 3 + 6 * t + above, bitops: 25 + 70 * (1 - t) ** 2, sizeMb: 7.5 + 5 * (1 - t) ** 3 + rng.next() * 0.1, paretoBitops: false, paretoSize: false, label: `W${(2 + 2 * rng.next()).toFixed(2)}A${(2.5 + 2.7 * rng.next()).toFixed(1)} CR${(8 + rng.int(10) / 2).toFixed(1)}` };
  });
  markFronts(cloud);
  const svg = await paretoPlot().svg(cloud, '1,000 points');
  const shown = assertNoLabelOverlaps(svg);
  const front = cloud.filter((p) => p.paretoBitops).length + cloud.filter((p) => p.paretoSize).length;
  assert.ok(shown >= 20 && shown < front, `${shown} labels shown of ${front} front points`);
  const png = await svgToPng(svg, 1);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
});

test('pareto plot of the 1,000-point bench sweep (LIMPQ ResNet-50): no two visible labels overlap', { skip: HAS_REFERENCE ? false : `no LIMPQ reference data at ${REFERENCE_DIR}` }, async () => {
  const spec = { model: join(REFERENCE_DIR, 'layers-reference-arithmetic.json'), indicators: join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'), layers: {} };
  const results = await runSweep(spec, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true }, benchGrid(), { solver: 'exact', jobs: 1 });
  assert.equal(results.length, 1000);
  const plotted = results.filter((r) => r.objective !== null).map((r) => ({ objective: r.objective!, bitops: r.bitops!, sizeMb: r.sizeMb!, paretoBitops: r.paretoBitops, paretoSize: r.paretoSize, label: sweepLabel(r) }));
  const svg = await paretoPlot().svg(plotted, '1,000 points');
  assert.equal(pointMarks(svg, 'bitops').length, plotted.length);
  const shown = assertNoLabelOverlaps(svg);
  assert.ok(shown >= 20, `${shown} labels`);
});
