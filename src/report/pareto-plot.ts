import { parse, View, type Spec } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One policy of a sweep. */
export interface PlotPoint {
  /** the search objective (summed importance of the chosen bits) */
  objective: number;
  /** BitOps in G, as search results and policies carry them */
  bitops: number;
  sizeMb: number;
  /** on the front of objective against BitOps (left panel) */
  paretoBitops: boolean;
  /** on the front of objective against size (right panel) */
  paretoSize: boolean;
  /** the budgets that produced it, e.g. `W3A4 CR12.2` */
  label: string;
}

/**
 * What both pictures draw of a point (the static plot and the explorer; field names as in
 * sweep.json): the label on a front is set only for the first point of its policy there.
 */
export interface PlotRow {
  objective: number;
  bitops: number;
  size_mb: number;
  pareto_bitops: boolean;
  pareto_size: boolean;
  label_bitops: string;
  label_size: string;
}

const FRONT = 'Pareto front';
const DOMINATED = 'dominated';
const FRONT_COLOR = '#d62728';
const DOMINATED_COLOR = '#7f7f7f';
const WIDTH = 420;
const HEIGHT = 320;
const LABEL_FONT_SIZE = 9;

type PanelSpec = Extract<TopLevelSpec, { hconcat: unknown }>['hconcat'][number];
type Encoding = Record<string, unknown>;

/** The two panels: objective against BitOps and against size, each with its own front. */
export const PANELS = [
  { key: 'bitops', field: 'bitops', title: 'BitOps (G, whole model)' },
  { key: 'size', field: 'size_mb', title: 'model size (MB)' },
] as const;

/** Names of the marks in the compiled spec (vega-lite appends `_marks` to a layer's name). */
const labelsMark = (key: string) => `labels_${key}_marks`;

/**
 * What the explorer adds to a panel: encodings that override the static ones (a selection's
 * colour, a tooltip) and parameters (a brush).
 */
export interface PanelExtras {
  encoding?: Encoding;
  params?: unknown[];
}

/**
 * A panel of objective against `x`: every point, the front's drawn last, larger and coloured,
 * joined by a step line (the best objective within each cost), and labels on the front only.
 * Dominated points are small and faint when `dense` (a signal) is set.
 */
export function panel(x: (typeof PANELS)[number], extras: PanelExtras = {}): PanelSpec {
  const xEnc = { field: x.field, type: 'quantitative', title: x.title, scale: { zero: false, nice: true } } as const;
  const yEnc = { field: 'objective', type: 'quantitative', title: 'objective (summed importance; lower is better)', scale: { zero: false } } as const;
  const onFront = `datum.pareto_${x.key}`;
  // one legend for colour and shape: both encode `kind` with the same domain, in both panels
  const domain = [FRONT, DOMINATED];
  return {
    name: `panel_${x.key}`,
    width: WIDTH,
    height: HEIGHT,
    transform: [{ calculate: `${onFront} ? '${FRONT}' : '${DOMINATED}'`, as: 'kind' }],
    layer: [
      {
        transform: [{ filter: onFront }],
        mark: { type: 'line', color: FRONT_COLOR, strokeWidth: 1.5, interpolate: 'step-after' },
        encoding: { x: xEnc, y: yEnc, order: { field: x.field, type: 'quantitative' } },
      },
      {
        name: `points_${x.key}`,
        ...(extras.params ? { params: extras.params } : {}),
        mark: { type: 'point', filled: true, stroke: 'white', strokeWidth: 0.4 },
        encoding: {
          x: xEnc,
          y: yEnc,
          color: { field: 'kind', type: 'nominal', title: null, scale: { domain, range: [FRONT_COLOR, DOMINATED_COLOR] } },
          shape: { field: 'kind', type: 'nominal', title: null, scale: { domain, range: ['diamond', 'circle'] } },
          size: { condition: { test: onFront, value: 45 }, value: { expr: 'dense ? 14 : 30' } },
          opacity: { condition: { test: onFront, value: 1 }, value: { expr: 'dense ? 0.35 : 0.7' } },
          order: { field: `pareto_${x.key}`, type: 'quantitative' },
          ...extras.encoding,
        },
      },
      {
        name: `labels_${x.key}`,
        transform: [{ filter: `datum.label_${x.key}` }],
        mark: { type: 'text', fontSize: LABEL_FONT_SIZE, color: '#333' },
        encoding: { x: xEnc, y: yEnc, text: { field: `label_${x.key}` } },
      },
    ],
  } as PanelSpec;
}

/**
 * Labels placed by vega's label transform: beside their point where the space is free of other
 * labels (below and left first: below a front there are no points, and its step line runs up and
 * to the right), and left out where there is none. vega-lite has no such transform, so it goes
 * into the compiled spec. (Labels do not avoid the points: that needs a canvas, none in node,
 * and in a browser it hid every label.)
 */
function thinLabels(spec: Spec): Spec {
  const marks = spec.marks?.flatMap((m) => (m.type === 'group' ? m.marks ?? [] : []));
  for (const { key } of PANELS) {
    const labels = marks?.find((m) => m.name === labelsMark(key));
    if (!labels) throw new Error(`pareto plot: no label marks for ${key}`);
    labels.transform = [{
      type: 'label',
      size: { signal: '[childWidth, height]' },
      anchor: ['bottom-left', 'left', 'bottom', 'bottom-right', 'top-left'],
      offset: [2],
      avoidBaseMark: true,
    }];
  }
  return spec;
}

/** The spec shared by both pictures; `note` (the sweep's counts) goes under the title. */
export function sweepPlotSpec(parts: { params?: unknown[]; panels: PanelSpec[] }): TopLevelSpec {
  return {
    title: { text: 'Sweep: objective against BitOps and against model size', subtitle: ' ', anchor: 'start' },
    params: [{ name: 'note', value: '' }, { name: 'dense', value: false }, ...(parts.params ?? [])],
    data: { name: 'points' },
    hconcat: parts.panels,
    config: { legend: { orient: 'bottom', symbolOpacity: 1, symbolSize: 60 }, view: { stroke: '#ccc' } },
  } as TopLevelSpec;
}

/** Compile to vega, with the signal `note` as subtitle (vega-lite takes none there) and thinned labels. */
export function compileSweepPlot(spec: TopLevelSpec): Spec {
  const compiled = compile(spec).spec;
  if (typeof compiled.title !== 'object' || Array.isArray(compiled.title)) throw new Error('pareto plot: no title');
  compiled.title.subtitle = { signal: 'note' };
  return thinLabels(compiled);
}

/** Above this many points the dominated ones are drawn smaller and fainter. */
export const DENSE = 60;

/**
 * Each point's front labels: on the first point of each policy only (points of one policy
 * coincide), saying how many budgets gave it (`W2A3 (+2)`).
 */
export function frontLabels<T extends { objective: number; bitops: number; sizeMb: number; paretoBitops: boolean; paretoSize: boolean; label: string }>(
  points: T[],
): { label_bitops: string; label_size: string }[] {
  const byPolicy = new Map<string, number[]>();
  points.forEach((p, i) => {
    const key = `${p.objective}/${p.bitops}/${p.sizeMb}`;
    byPolicy.set(key, [...(byPolicy.get(key) ?? []), i]);
  });
  const labels = points.map(() => ({ label_bitops: '', label_size: '' }));
  for (const same of byPolicy.values()) {
    const first = points[same[0]];
    const text = first.label + (same.length > 1 ? ` (+${same.length - 1})` : '');
    if (first.paretoBitops) labels[same[0]].label_bitops = text;
    if (first.paretoSize) labels[same[0]].label_size = text;
  }
  return labels;
}

/** The rows the static plot draws. */
function plotRows(points: PlotPoint[]): PlotRow[] {
  const labels = frontLabels(points);
  return points.map((p, i) => ({
    objective: p.objective,
    bitops: p.bitops,
    size_mb: p.sizeMb,
    pareto_bitops: p.paretoBitops,
    pareto_size: p.paretoSize,
    ...labels[i],
  }));
}

/** The plot, its spec compiled and its vega view built: ready for a sweep's points, once. */
export interface ParetoPlot {
  /** the SVG of these points with `note` (the sweep's counts) under the title; the view is freed after */
  svg(points: PlotPoint[], note: string): Promise<string>;
}

/**
 * An SVG of a sweep's trade-offs: objective against BitOps (G) and against model size (MB), side
 * by side, each panel's Pareto front a step line through emphasised, labelled points over the
 * rest. Rendered by vega's headless view (no canvas needed). The data come in at the end, so a
 * sweep can load vega and build all this while it solves.
 */
export function paretoPlot(): ParetoPlot {
  const view = new View(parse(compileSweepPlot(sweepPlotSpec({ panels: PANELS.map((p) => panel(p)) }))), { renderer: 'none' });
  return {
    async svg(points, note) {
      try {
        view.signal('note', note).signal('dense', points.length > DENSE);
        view.data('points', plotRows(points));
        return await view.toSVG();
      } finally {
        view.finalize();
      }
    },
  };
}

/** The same picture as PNG (resvg, with the system's fonts), `scale` times the SVG's size. */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  const { Resvg } = await import('@resvg/resvg-js');
  return new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
