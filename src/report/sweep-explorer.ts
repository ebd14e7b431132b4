import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Spec } from 'vega';
import type { SweepResult } from '../search/sweep.js';
import { compileSweepPlot, DENSE, frontLabels, panel, PANELS, sweepPlotSpec, type PlotRow } from './pareto-plot.js';
import { sweepEntry, sweepLabel } from './sweep-files.js';
import { frontWord, SWEEP_TERMS } from './sweep-summary.js';

/** A budget list of the sweep with more than one value: the explorer filters by it. */
export interface BudgetFamily {
  /** field of sweep.json, e.g. `wb` */
  key: string;
  flag: string;
  values: number[];
}

/** What `sweepExplorer` needs besides the points. */
export interface ExplorerContext {
  title: string;
  /** the sweep's counts (`summaryLine`) */
  summary: string;
  /** searchable layers in the order of `weight_bits` / `act_bits` */
  layers: string[];
  /** `mpq search` with the sweep's inputs and flags, shell-quoted, less the budgets */
  command: string;
  /** each point's budget flags, shell-quoted, in the order of the results */
  budgetFlags: string[];
}

type Entry = ReturnType<typeof sweepEntry>;

/**
 * One point as the page has it: the fields of its sweep.json entry that the page shows (bits as
 * text, not arrays: the file stays small) and its labels.
 */
type ExplorerRow = Pick<Entry, (typeof FAMILIES)[number]['key'] | 'status' | 'compression_ratio' | 'reused_from'> & PlotRow & {
  index: number;
  label: string;
  front: string;
  reused: string;
  w_bits: string;
  a_bits: string;
  budget_flags: string;
};

const FAMILIES = [
  { key: 'wb', flag: '--weight-bits' },
  { key: 'ab', flag: '--act-bits' },
  { key: 'cr', flag: '--cr' },
  { key: 'max_bitops_g', flag: '--max-bitops' },
  { key: 'max_size_mb', flag: '--max-size-mb' },
  { key: 'max_latency', flag: '--max-latency' },
] as const;

/** Points the page marks as selected: their indices are in the signal `selected`. */
const SELECTED = 'indexof(selected, datum.index) >= 0';

/** The explorer's panels: the static plot's, with a tooltip, a shared brush and the selection shown. */
function explorerSpec(): Spec {
  const tooltip = [
    { field: 'label', title: 'budgets' },
    { field: 'status' },
    { field: 'objective', format: '.6f' },
    { field: 'bitops', title: 'BitOps (G)', format: '.3f' },
    { field: 'size_mb', title: 'size (MB)', format: '.3f' },
    { field: 'compression_ratio', title: 'compression ratio', format: '.2f' },
    { field: 'front', title: 'Pareto' },
    { field: 'reused', title: 'reused from' },
    { field: 'w_bits', title: 'weight bits' },
    { field: 'a_bits', title: 'activation bits' },
  ];
  const panels = PANELS.map((p) => panel(p, {
    params: [{ name: 'brush', select: { type: 'interval', encodings: ['x', 'y'], clear: 'dblclick' } }],
    encoding: {
      tooltip,
      opacity: {
        condition: [
          { test: `!anySelected && datum.pareto_${p.key}`, value: 1 },
          { test: '!anySelected', value: { expr: 'dense ? 0.35 : 0.7' } },
          { test: SELECTED, value: 1 },
        ],
        value: 0.08,
      },
      stroke: { condition: { test: `anySelected && ${SELECTED}`, value: 'black' }, value: 'white' },
    },
  }));
  return compileSweepPlot(sweepPlotSpec({
    params: [{ name: 'selected', value: [] }, { name: 'anySelected', value: false }],
    panels,
  }));
}

/** What every explorer page holds whatever its points: vega's builds and the compiled spec. */
let fixedParts: { vega: string; vegaEmbed: string; spec: string } | undefined;

/** Read and compile what every page holds, once: a sweep does it while its workers solve. */
export function prepareExplorer(): NonNullable<typeof fixedParts> {
  return (fixedParts ??= {
    vega: vegaBuild('vega', 'vega.min.js'),
    vegaEmbed: vegaBuild('vega-embed', 'vega-embed.min.js'),
    spec: scriptJson(explorerSpec()),
  });
}

/**
 * A file of vega's beside the module its package exports (its `unpkg` build, made for `<script>`),
 * with any `</script` in it escaped so that it cannot end its element early.
 */
function vegaBuild(pkg: string, file: string): string {
  return readFileSync(join(dirname(fileURLToPath(import.meta.resolve(pkg))), file), 'utf8').replace(/<\/script/gi, '<\\/script');
}

/** JSON safe inside `<script>`: no `</script>` or `<!--` can end or change it. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/**
 * The sweep explorer: one HTML file that needs no network (vega and vega-embed inlined), with the
 * static plot's two panels, a tooltip per point (budgets, objective, BitOps, size, per-layer bits),
 * a brush in either panel or a click (shift adds) selecting points in both, filters by budget
 * list, a table of the selection (the Pareto points when nothing is selected) and, per row, the
 * `mpq search` command that reproduces the point.
 */
export function sweepExplorer(results: SweepResult[], ctx: ExplorerContext): string {
  const page = prepareExplorer();
  const feasible = results.filter((r) => r.objective !== null);
  const labels = frontLabels(feasible.map((r) => ({ objective: r.objective!, bitops: r.bitops!, sizeMb: r.sizeMb!, paretoBitops: r.paretoBitops, paretoSize: r.paretoSize, label: sweepLabel(r) })));
  const labelOf = new Map(feasible.map((r, k) => [r.index, labels[k]]));
  const byIndex = new Map(results.map((r) => [r.index, r]));
  const rows: ExplorerRow[] = results.map((r, k) => {
    const e = sweepEntry(r);
    return {
      index: r.index,
      wb: e.wb,
      ab: e.ab,
      cr: e.cr,
      max_bitops_g: e.max_bitops_g,
      max_size_mb: e.max_size_mb,
      max_latency: e.max_latency,
      status: e.status,
      objective: r.objective!,
      bitops: r.bitops!,
      size_mb: r.sizeMb!,
      compression_ratio: e.compression_ratio,
      pareto_bitops: e.pareto_bitops,
      pareto_size: e.pareto_size,
      reused_from: e.reused_from,
      label: sweepLabel(r),
      front: frontWord(r),
      reused: r.reusedFrom === undefined ? '' : [`#${r.reusedFrom}`, ...[byIndex.get(r.reusedFrom)].filter((q) => q !== undefined).map(sweepLabel)].join(' '),
      w_bits: r.weightBits?.join(' ') ?? '',
      a_bits: r.actBits?.join(' ') ?? '',
      budget_flags: ctx.budgetFlags[k],
      ...(labelOf.get(r.index) ?? { label_bitops: '', label_size: '' }),
    };
  });
  const families: BudgetFamily[] = FAMILIES.map(({ key, flag }) => ({
    key,
    flag,
    values: [...new Set(rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number'))].sort((a, b) => a - b),
  })).filter((f) => f.values.length > 1);
  const data: ExplorerData = { ...ctx, terms: SWEEP_TERMS, families, rows, dense: DENSE };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(ctx.title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
#summary { margin: 0 0 .5em; }
#controls { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; margin: .5em 0; }
#controls label { font-size: .9em; }
table { border-collapse: collapse; font-size: .85em; margin-top: .5em; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
#table-box { max-height: 28em; overflow: auto; display: inline-block; }
#command { background: #f7f7f7; border: 1px solid #ccc; padding: .5em; white-space: pre-wrap; word-break: break-all; }
dl { font-size: .85em; display: grid; grid-template-columns: max-content auto; gap: 0 1em; }
dt { font-weight: bold; }
</style>
<script>${page.vega}</script>
<script>${page.vegaEmbed}</script>
</head>
<body>
<h1>${escapeHtml(ctx.title)}</h1>
<p id="summary">${escapeHtml(ctx.summary)}</p>
<details><summary>What the words mean</summary><dl id="terms"></dl></details>
<div id="controls"></div>
<div id="chart"></div>
<p>Drag a box in either panel to select points (double-click clears it); click a point to select it, shift-click to add one, click an empty place to select none.</p>
<h2 id="table-title"></h2>
<div id="table-box"><table id="table"></table></div>
<p>Reproduce a point: <button id="copy" disabled>copy</button></p>
<pre id="command">(press "command" in a row of the table)</pre>
<script type="application/json" id="sweep-data">${scriptJson(data)}</script>
<script type="application/json" id="sweep-spec">${page.spec}</script>
<script>(${explorerPage.toString()})();</script>
</body>
</html>
`;
}

/**
 * The page's script, run in the browser (its source is inlined into the HTML: it may use nothing
 * from this module). It owns the selection: the brush's extent (a vega signal), clicks and the
 * filters decide which points are selected; it hands their indices to vega (`selected`) and lists
 * them in the table.
 */
function explorerPage(): void {
  type Row = ExplorerRow;
  const data = JSON.parse(document.getElementById('sweep-data')!.textContent!) as ExplorerData;
  const spec = JSON.parse(document.getElementById('sweep-spec')!.textContent!);
  const el = (id: string) => document.getElementById(id)!;
  const make = <K extends keyof HTMLElementTagNameMap>(tag: K, text = '', cls = ''): HTMLElementTagNameMap[K] => {
    const e = document.createElement(tag);
    e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  for (const [word, meaning] of Object.entries(data.terms)) el('terms').append(make('dt', word.replace('_', ' ')), make('dd', meaning));
  el('terms').append(make('dt', 'weight / activation bits'), make('dd', `per searchable layer, in this order: ${data.layers.join(', ')}`));

  const filters = new Map<string, number | null>();
  const picked = new Set<number>();
  let brush: Record<string, [number, number]> | null = null;
  const feasible = data.rows.filter((r) => r.objective !== null && r.status !== 'infeasible' && r.bitops !== null);
  const field = (r: Row, key: string) => (r as unknown as Record<string, unknown>)[key];
  const visible = () => feasible.filter((r) => [...filters].every(([k, v]) => v === null || field(r, k) === v));

  const embed = (globalThis as unknown as { vegaEmbed: (el: HTMLElement, spec: unknown, opts: unknown) => Promise<{ view: VegaView }> }).vegaEmbed;
  interface VegaView {
    signal(name: string, value?: unknown): VegaView;
    data(name: string, rows: unknown[]): VegaView;
    runAsync(): Promise<VegaView>;
    addSignalListener(name: string, f: (name: string, value: unknown) => void): void;
    addEventListener(type: string, f: (event: MouseEvent, item: { datum?: Row } | null) => void): void;
  }
  // the first data go into the spec: vega sizes the view to them
  const points = (spec.data as { name: string; values?: unknown[] }[]).find((d) => d.name === 'points')!;
  points.values = visible();
  for (const s of spec.signals as { name: string; value: unknown }[]) {
    if (s.name === 'note') s.value = data.summary;
    if (s.name === 'dense') s.value = points.values.length > data.dense;
  }
  embed(el('chart'), spec, { mode: 'vega', renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false } }).then(({ view }) => {
    const selection = (): Row[] => {
      const rows = visible();
      if (picked.size) return rows.filter((r) => picked.has(r.index));
      if (brush) {
        const ranges = Object.entries(brush);
        return rows.filter((r) => ranges.every(([f, [lo, hi]]) => {
          const v = field(r, f) as number;
          return v >= Math.min(lo, hi) && v <= Math.max(lo, hi);
        }));
      }
      return [];
    };
    const update = async () => {
      const chosen = selection();
      view.signal('selected', chosen.map((r) => r.index)).signal('anySelected', Boolean(picked.size || brush));
      await view.runAsync();
      showTable(picked.size || brush ? chosen : visible().filter((r) => r.pareto_bitops || r.pareto_size), Boolean(picked.size || brush));
    };
    // one update at a time, each after vega's current run (listeners are called inside one)
    let queue = Promise.resolve();
    const schedule = (before = () => {}) => (queue = queue.then(() => new Promise((r) => setTimeout(r, 0))).then(() => {
      before();
      return update();
    }));
    view.addSignalListener('brush', (_name, value) => {
      const v = value as Record<string, [number, number]> | null;
      brush = v && Object.keys(v).length ? v : null;
      if (brush) picked.clear();
      void schedule();
    });
    view.addEventListener('click', (event, item) => {
      const d = item?.datum;
      if (d && typeof d.index === 'number' && 'budget_flags' in d) {
        if (!event.shiftKey) picked.clear();
        if (picked.has(d.index)) picked.delete(d.index);
        else picked.add(d.index);
      } else if (!event.shiftKey) picked.clear();
      void schedule();
    });

    for (const f of data.families) {
      const select = make('select');
      select.name = f.key;
      select.append(make('option', 'all'));
      for (const v of f.values) select.append(make('option', String(v)));
      select.addEventListener('change', () => {
        filters.set(f.key, select.selectedIndex === 0 ? null : f.values[select.selectedIndex - 1]);
        void schedule(() => {
          picked.clear();
          view.signal('dense', visible().length > data.dense).data('points', visible());
        });
      });
      const label = make('label', `${f.flag} `);
      label.append(select);
      el('controls').append(label);
    }
    // for scripting the page (its tests read the brush from it)
    (globalThis as unknown as { sweepView: VegaView }).sweepView = view;
    void schedule().then(() => document.body.setAttribute('data-ready', 'true'));
  });

  const fmt = (v: unknown, digits: number) => (typeof v === 'number' ? v.toFixed(digits) : '-');
  const showTable = (rows: Row[], selected: boolean) => {
    el('table-title').textContent = selected
      ? `${rows.length} selected point${rows.length === 1 ? '' : 's'}`
      : `Nothing selected: the ${rows.length} Pareto points (BitOps, size or both) shown`;
    const table = el('table');
    table.replaceChildren();
    const head = make('tr');
    for (const [h, cls] of [['#', ''], ['budgets', 'text'], ['status', 'text'], ['objective', ''], ['BitOps (G)', ''], ['size (MB)', ''], ['CR', ''], ['Pareto', 'text'], ['reused from', 'text'], ['', '']]) head.append(make('th', h, cls));
    table.append(head);
    for (const r of rows) {
      const tr = make('tr');
      tr.dataset.index = String(r.index);
      tr.append(make('td', String(r.index)), make('td', r.label, 'text'), make('td', r.status, 'text'), make('td', fmt(r.objective, 6)),
        make('td', fmt(r.bitops, 3)), make('td', fmt(r.size_mb, 3)), make('td', fmt(r.compression_ratio, 2)), make('td', r.front, 'text'), make('td', r.reused, 'text'));
      const button = make('button', 'command');
      button.addEventListener('click', () => {
        el('command').textContent = `${data.command} ${r.budget_flags} --out`;
        (el('copy') as HTMLButtonElement).disabled = false;
      });
      const td = make('td');
      td.append(button);
      tr.append(td);
      table.append(tr);
    }
  };
  el('copy').addEventListener('click', () => void navigator.clipboard?.writeText(el('command').textContent ?? ''));
}

/** What the page reads from its JSON; `dense`: above this many points the dominated ones are faint. */
type ExplorerData = ExplorerContext & { terms: typeof SWEEP_TERMS; families: BudgetFamily[]; rows: ExplorerRow[]; dense: number };
