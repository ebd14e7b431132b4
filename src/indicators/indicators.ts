import { createHash } from 'node:crypto';
import { Parser } from 'pickleparser';
import { shownValue, UserError } from '../util/errors.js';
import { readInputFile, writeOutput } from '../util/fs.js';

/** Learned importance indicators in the LIMPQ schema: layer → bits → step size. */
export interface Indicators {
  weight: Record<string, Record<string, number>>;
  act: Record<string, Record<string, number>>;
  /** searchable layer names, in order */
  layerNames: string[];
  /** optional provenance: model, bits, how it was produced, seed */
  meta?: Record<string, unknown>;
}

/** Indicators as a file holds them (LIMPQ's schema), as `mpq pretrain` writes them. */
export interface IndicatorsFile {
  /** layer → bits (string) → weight step size */
  weight: Record<string, Record<string, number>>;
  /** layer → bits (string) → activation (input) step size */
  act: Record<string, Record<string, number>>;
  /** searchable layer names, in order */
  layer_name: string[];
  meta: Record<string, unknown>;
}

/** Writes indicators as JSON in LIMPQ's schema (atomically: a temp file, then renamed); readIndicators reads them back. */
export function writeIndicators(path: string, indicators: IndicatorsFile): void {
  writeOutput(path, `${JSON.stringify(indicators, null, 2)}\n`);
}

export interface LoadedIndicators extends Indicators {
  path: string;
  sha256: string;
}

/** Read indicators from LIMPQ's pickle (`.pkl`) or from JSON in the same schema. */
export function readIndicators(path: string): LoadedIndicators {
  const bytes = readInputFile(path, 'indicators');
  const raw = path.toLowerCase().endsWith('.pkl') ? parsePickle(path, bytes) : parseJson(path, bytes);
  return { ...validateIndicators(path, raw), path, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Classes whose pickled instances are plain dicts to us (LIMPQ saves a dict). */
const DICT_CLASSES = new Set(['builtins.dict', 'collections.OrderedDict', 'collections.defaultdict']);

function parsePickle(path: string, bytes: Buffer): unknown {
  let top: unknown;
  try {
    top = new Parser().parse(bytes);
  } catch (err) {
    throw new UserError(`${path}: not a readable pickle (${oneLine(err)})`);
  }
  // pickleparser builds instances of classes it does not know with __module__/__name__ on their prototype
  const cls = typeof top === 'object' && top !== null ? (top as { __module__?: unknown; __name__?: unknown }) : undefined;
  if (cls && typeof cls.__module__ === 'string' && typeof cls.__name__ === 'string' && !DICT_CLASSES.has(`${cls.__module__}.${cls.__name__}`)) {
    throw new UserError(`${path}: the pickle holds a ${cls.__module__}.${cls.__name__} object, not a dict with 'weight', 'act' and 'layer_name' (LIMPQ's indicators)`);
  }
  return top;
}

function parseJson(path: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UserError(`${path}: not valid JSON (${oneLine(err)})`);
  }
}

function oneLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Check the schema by hand so every message names the exact field (`weight['conv1']['4']`). */
export function validateIndicators(path: string, raw: unknown): Indicators {
  if (!isRecord(raw)) throw new UserError(`${path}: expected an object with 'weight', 'act' and 'layer_name', got ${shownValue(raw)}`);
  const names = raw.layer_name;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
    throw new UserError(`${path}: layer_name: expected a non-empty list of layer names`);
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UserError(`${path}: layer_name: '${dup}' appears twice`);
  const tables = { weight: raw.weight, act: raw.act };
  const out: Indicators = { weight: {}, act: {}, layerNames: names as string[] };
  for (const kind of ['weight', 'act'] as const) {
    const table = tables[kind];
    if (!isRecord(table)) throw new UserError(`${path}: ${kind}: expected an object of layer → {bits: value}`);
    for (const name of names as string[]) {
      const entry = table[name];
      if (!isRecord(entry)) throw new UserError(`${path}: ${kind}['${name}']: missing (the layer is in layer_name)`);
      const clean: Record<string, number> = {};
      for (const [bits, value] of Object.entries(entry)) {
        if (!/^\d+$/.test(bits)) throw new UserError(`${path}: ${kind}['${name}']: key '${bits}' is not a bit-width`);
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
          throw new UserError(`${path}: ${kind}['${name}']['${bits}']: expected a positive finite number, got ${shownValue(value)}`);
        }
        clean[String(Number(bits))] = value;
      }
      out[kind][name] = clean;
    }
  }
  if (raw.meta !== undefined) {
    if (!isRecord(raw.meta)) throw new UserError(`${path}: meta: expected an object`);
    out.meta = raw.meta;
  }
  return out;
}

/** DDP checkpoints prefix every module with `module.`; names match without it. */
export function canonicalLayerName(name: string): string {
  return name.startsWith('module.') ? name.slice('module.'.length) : name;
}

/**
 * For each model layer (in the model's order), the indicator layer of the same name. Any
 * mismatch is an error listing the names on either side that found no partner.
 */
export function matchIndicatorLayers(ind: Pick<LoadedIndicators, 'path' | 'layerNames'>, modelLayers: string[], modelName: string): string[] {
  const byName = new Map(ind.layerNames.map((n) => [canonicalLayerName(n), n]));
  const missing = modelLayers.filter((n) => !byName.has(canonicalLayerName(n)));
  const wanted = new Set(modelLayers.map(canonicalLayerName));
  const extra = ind.layerNames.filter((n) => !wanted.has(canonicalLayerName(n)));
  if (missing.length || extra.length) {
    const parts = [];
    if (missing.length) parts.push(`no indicators for model layers ${listNames(missing)}`);
    if (extra.length) parts.push(`indicator layers not in the model: ${listNames(extra)}`);
    throw new UserError(`${ind.path}: does not match model '${modelName}' (${modelLayers.length} searchable layers): ${parts.join('; ')}`);
  }
  return modelLayers.map((n) => byName.get(canonicalLayerName(n))!);
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 8).join(', ');
  return names.length > 8 ? `${shown} … (${names.length} in all)` : shown;
}

/** A candidate removed from a layer because its indicator breaks monotonicity. */
export interface WiredPoint {
  layer: string;
  kind: 'weight' | 'act';
  bits: number;
  /** its indicator, and the indicator of the next higher candidate it falls below */
  value: number;
  higherBits: number;
  higherValue: number;
  /** in an objective table of (w, a) pairs: the other bit-width of both choices (act bits for a weight wired point) */
  at?: number;
}

/**
 * The candidate bit-widths a layer may use for one of weight/act. Lower bits should learn larger
 * step sizes; a candidate whose indicator is below that of the next higher candidate is a "wired
 * point" (an artefact of joint training, LIMPQ) and is left out rather than priced at 1e8, unless
 * `keepWired` (--keep-wired).
 */
export function allowedBits(
  ind: Indicators, kind: 'weight' | 'act', layer: string, bits: number[], path: string, keepWired = false,
): { allowed: number[]; removed: WiredPoint[] } {
  const entry = ind[kind][layer];
  const desc = [...bits].sort((a, b) => b - a);
  for (const b of desc) {
    if (entry[String(b)] === undefined) {
      throw new UserError(`${path}: ${kind}['${layer}'] has no indicator for ${b} bits (has ${Object.keys(entry).join(', ')})`);
    }
  }
  const allowed = [desc[0]];
  const removed: WiredPoint[] = [];
  for (let i = 1; i < desc.length; i++) {
    const value = entry[String(desc[i])];
    const higherValue = entry[String(desc[i - 1])];
    if (value < higherValue && !keepWired) removed.push({ layer, kind, bits: desc[i], value, higherBits: desc[i - 1], higherValue });
    else allowed.push(desc[i]);
  }
  return { allowed, removed };
}
