import { parse, View } from 'vega';
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
  label: string;
}

const PARETO = 'Pareto-optimal';
const DOMINATED = 'dominated';
const PARETO_COLOR = '#d62728';
const DOMINATED_COLOR = '#9e9e9e';

type PanelSpec = Extract<TopLevelSpec, { hconcat: unknown }>['hconcat'][number];

/** A panel of objective against `x`: every point, Pareto points joined in x order and labelled. */
function panel(x: { field: string; title: string; front: string }): PanelSpec {
  const xEncoding = { field: x.field, type: 'quantitative', title: x.title, scale: { zero: false } } as const;
  const yEncoding = { field: 'objective', type: 'quantitative', title: 'objective', scale: { zero: false } } as const;
  const onFront = { filter: `datum.${x.front} === '${PARETO}'` };
  return {
    width: 320,
    height: 260,
    layer: [
      {
        transform: [onFront],
        mark: { type: 'line', color: PARETO_COLOR, strokeWidth: 1.5 },
        encoding: { x: xEncoding, y: yEncoding, order: { field: x.field, type: 'quantitative' } },
      },
      {
        mark: { type: 'point', filled: true, size: 70, opacity: 1 },
        encoding: {
          x: xEncoding,
          y: yEncoding,
          color: {
            field: x.front,
            type: 'nominal',
            title: null,
            scale: { domain: [PARETO, DOMINATED], range: [PARETO_COLOR, DOMINATED_COLOR] },
          },
          shape: {
            field: x.front,
            type: 'nominal',
            title: null,
            scale: { domain: [PARETO, DOMINATED], range: ['diamond', 'circle'] },
          },
          tooltip: [{ field: 'label' }, { field: x.field, title: x.title }, { field: 'objective' }],
        },
      },
      {
        transform: [onFront],
        mark: { type: 'text', align: 'left', dx: 7, dy: -7, fontSize: 9 },
        encoding: { x: xEncoding, y: yEncoding, text: { field: 'label' } },
      },
    ],
  };
}

/** The plot, its spec compiled and its vega view built: ready for a sweep's points, once. */
export interface ParetoPlot {
  /** the SVG of these points (the view is freed after) */
  svg(points: PlotPoint[]): Promise<string>;
}

/**
 * An SVG of a sweep's trade-offs: objective against BitOps (G) and against model size (MB), side
 * by side, with the Pareto-optimal points coloured, diamond-shaped, labelled and joined.
 * Compiled from a vega-lite spec and rendered by vega's headless view (no canvas needed). The
 * data are a named set filled in at the end, so a sweep can build all this while it solves.
 */
export function paretoPlot(): ParetoPlot {
  const spec: TopLevelSpec = {
    title: 'Sweep: objective against cost',
    data: { name: 'points' },
    hconcat: [
      panel({ field: 'bitopsG', title: 'BitOps (G)', front: 'frontBitops' }),
      panel({ field: 'sizeMb', title: 'model size (MB)', front: 'frontSize' }),
    ],
    config: { legend: { orient: 'bottom' } },
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  return {
    async svg(points) {
      try {
        view.data('points', points.map((p) => ({
          objective: p.objective,
          bitopsG: p.bitops,
          sizeMb: p.sizeMb,
          frontBitops: p.paretoBitops ? PARETO : DOMINATED,
          frontSize: p.paretoSize ? PARETO : DOMINATED,
          label: p.label,
        })));
        return await view.toSVG();
      } finally {
        view.finalize();
      }
    },
  };
}
