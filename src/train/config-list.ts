import * as v from 'valibot';
import { UserError } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import { describeIssues, isUnknownKey, pathTo, strictFields } from '../util/schema.js';
// the two tfjs-free modules of quant/: validating a config list loads no tfjs
import { SUPPORTED_BITS } from '../quant/bits.js';
import {
  quantizerBitsProblem, QUANT_TYPES, QUANTIZER_CONVENTIONS, type QuantizerName, type QuantType,
} from '../quant/conventions.js';

/**
 * NNI's quantization config_list (v2 schema): a JSON array of entries
 *   { quant_types: ['weight' | 'input' | 'output'], quant_bits: int | {type: int},
 *     quant_start_step?: int, op_types?: [str], op_names?: [str], exclude?: true }
 * mapped onto mpq's layers. As NNI's select_config, the last entry that matches an op wins, and
 * an op whose last match excludes it is not quantized. Op types: Conv2d / Conv2D select conv layers
 * (depthwise ones too, as torch's Conv2d with groups), Linear / Dense the fully connected ones,
 * 'default' both; ReLU takes 'output' only: a ReLU's output is the next layer's input, so it sets
 * the input quantizer of every layer fed by a ReLU (mpq quantizes layer inputs, not outputs), unless
 * that layer is excluded.
 */

type OpKind = 'conv' | 'linear' | 'relu';
const OP_TYPE_KINDS: Record<string, readonly OpKind[]> = {
  Conv2d: ['conv'], Conv2D: ['conv'], Linear: ['linear'], Dense: ['linear'], ReLU: ['relu'], default: ['conv', 'linear'],
};
const LAYER_KINDS: readonly OpKind[] = ['conv', 'linear'];

const { min, max } = SUPPORTED_BITS;
const BITS_MESSAGE = `expected an integer bit-width in ${min}..${max}`;
const bitsSchema = v.pipe(v.number(BITS_MESSAGE), v.integer(BITS_MESSAGE), v.minValue(min, BITS_MESSAGE), v.maxValue(max, BITS_MESSAGE));
const bitsByTypeSchema = v.strictObject({ weight: v.optional(bitsSchema), input: v.optional(bitsSchema), output: v.optional(bitsSchema) });
type BitsByType = v.InferOutput<typeof bitsByTypeSchema>;
const BITS_EXPECTED = 'an integer bit-width or an object {weight, input, output: bits}';
const nonEmptyNames = (what: string) => v.pipe(
  v.array(v.pipe(v.string(`expected ${what}`), v.minLength(1, `expected ${what}`)), `expected a list of ${what}s`),
  v.minLength(1, `expected at least one ${what}`),
);
const START_STEP_MESSAGE = 'expected an integer >= 0';

const entryFields = strictFields({
  quant_types: v.optional(v.pipe(
    v.array(v.picklist(QUANT_TYPES, `expected one of ${QUANT_TYPES.map((t) => `'${t}'`).join(', ')}`), 'expected a list of quant types'),
    v.minLength(1, 'expected at least one quant type'),
  )),
  // checked below, by its JSON type, so that a bad value inside the object is named by its path
  quant_bits: v.optional(v.unknown()),
  quant_start_step: v.optional(v.pipe(v.number(START_STEP_MESSAGE), v.integer(START_STEP_MESSAGE), v.minValue(0, START_STEP_MESSAGE))),
  op_types: v.optional(nonEmptyNames('op type')),
  op_names: v.optional(nonEmptyNames('layer name')),
  exclude: v.optional(v.boolean('expected true or false')),
}, 'expected a config entry object');
type EntryFields = v.InferOutput<typeof entryFields>;

const entrySchema = v.pipe(
  entryFields,
  v.rawCheck<EntryFields>(({ dataset, addIssue }) => {
    // an unknown field leaves the others checked: they may say what it was meant to be
    if (!dataset.typed && !dataset.issues?.every(isUnknownKey)) return;
    const e = dataset.value as EntryFields;
    const issue = (message: string, ...keys: Array<string | number>) => addIssue({ message, ...(keys.length > 0 && { path: pathTo(...keys) }) });
    if (!e.op_types && !e.op_names) issue('give op_types or op_names (the ops this entry applies to)');
    e.op_types?.forEach((t, i) => {
      if (!(t in OP_TYPE_KINDS)) issue(`'${t}' is not an op type mpq quantizes (${Object.keys(OP_TYPE_KINDS).join(', ')})`, 'op_types', i);
    });
    if (e.exclude) {
      for (const key of ['quant_types', 'quant_bits', 'quant_start_step'] as const) {
        if (e[key] !== undefined) issue('not used in an entry with exclude: true', key);
      }
      return;
    }
    if (!e.quant_types) issue('missing (expected a list of weight, input, output)', 'quant_types');
    if (e.quant_bits === undefined) {
      issue(`missing (expected ${BITS_EXPECTED})`, 'quant_bits');
      return;
    }
    const byType = typeof e.quant_bits === 'object' && e.quant_bits !== null && !Array.isArray(e.quant_bits);
    const checked = v.safeParse(byType ? bitsByTypeSchema : bitsSchema, e.quant_bits);
    if (!checked.success) {
      const first = checked.issues[0]!;
      const keys = (first.path ?? []).map((item) => item.key as string | number);
      if (isUnknownKey(first)) issue(`unknown field '${String(keys.at(-1))}'`, 'quant_bits', ...keys.slice(0, -1));
      else issue(typeof e.quant_bits === 'number' || byType ? first.message : `expected ${BITS_EXPECTED}`, 'quant_bits', ...keys);
      return;
    }
    if (!e.quant_types || !byType) return;
    const bits = e.quant_bits as BitsByType;
    for (const t of e.quant_types) {
      if (bits[t] === undefined) issue(`no bits for quant type '${t}'`, 'quant_bits');
    }
    for (const key of Object.keys(bits) as QuantType[]) {
      if (!e.quant_types.includes(key)) issue(`'${key}' is not in quant_types`, 'quant_bits', key);
    }
  }),
);

const configListSchema = v.strictObject({
  config_list: v.pipe(
    v.array(entrySchema, 'expected a JSON array of config entries (an NNI config_list)'),
    v.minLength(1, 'expected at least one config entry'),
  ),
});

export type ConfigEntry = Omit<v.InferOutput<typeof entrySchema>, 'quant_bits'> & { quant_bits?: number | BitsByType };

function bitsOf(entry: ConfigEntry, type: QuantType): number {
  return typeof entry.quant_bits === 'number' ? entry.quant_bits : entry.quant_bits![type]!;
}

function kindsOf(entry: ConfigEntry): readonly OpKind[] {
  return entry.op_types ? [...new Set(entry.op_types.flatMap((t) => OP_TYPE_KINDS[t] ?? []))] : LAYER_KINDS;
}

/** `source: config_list[i].field: message`, a one-line user error. */
function fieldError(source: string, path: Array<string | number>, message: string): UserError {
  const where = path.reduce<string>((text, key) => (typeof key === 'number' ? `${text}[${key}]` : `${text}.${key}`), 'config_list');
  return new UserError(`${source}: ${where}: ${message}`);
}

/**
 * Validates a config list for a quantizer: the schema (field-level messages), then what that
 * quantizer takes (its quant types, bit-widths, start step) and which op types each quant type
 * can apply to.
 */
export function parseConfigList(data: unknown, source: string, quantizer: QuantizerName): ConfigEntry[] {
  const parsed = v.safeParse(configListSchema, { config_list: data });
  if (!parsed.success) throw new UserError(`${source}: ${describeIssues(parsed.issues)}`);
  const entries = parsed.output.config_list as ConfigEntry[];
  const convention = QUANTIZER_CONVENTIONS[quantizer];
  entries.forEach((e, i) => {
    if (e.exclude) return;
    const kinds = kindsOf(e);
    e.quant_types!.forEach((t, j) => {
      if (!convention.quantTypes.includes(t)) {
        throw fieldError(source, [i, 'quant_types', j], `'${t}' is not quantized by ${quantizer} (it takes: ${convention.quantTypes.join(', ')})`);
      }
      if (t === 'output' && (e.op_names || !kinds.includes('relu'))) {
        throw fieldError(source, [i, 'quant_types', j], "'output' applies to op_types ['ReLU'] alone (a layer's output is the next layer's input: quantize its 'input')");
      }
      if (t !== 'output' && !kinds.some((k) => k !== 'relu')) {
        throw fieldError(source, [i, 'quant_types', j], `'${t}' needs a Conv2d, Linear or default op type (a ReLU has only an output)`);
      }
      const problem = quantizerBitsProblem(quantizer, t === 'weight' ? 'weight' : 'activation', bitsOf(e, t));
      if (problem) throw fieldError(source, typeof e.quant_bits === 'number' ? [i, 'quant_bits'] : [i, 'quant_bits', t], problem);
    });
  });
  return entries;
}

export function readConfigList(path: string, quantizer: QuantizerName): ConfigEntry[] {
  return parseConfigList(readJsonFile(path, 'NNI config list'), path, quantizer);
}

/** Every bit-width a config list names (the model is built with all of them). */
export function configListBits(entries: readonly ConfigEntry[]): number[] {
  const bits = new Set<number>();
  for (const e of entries) for (const t of e.quant_types ?? []) if (e.quant_bits !== undefined) bits.add(bitsOf(e, t));
  return [...bits].sort((a, b) => b - a);
}

/** A quantized layer as the config list sees it. */
export interface ConfigLayer {
  name: string;
  kind: 'conv' | 'linear';
  /** its input is a ReLU's output (selected by ReLU 'output' entries) */
  reluInput: boolean;
  /** a first/last layer, which mpq runs at FIXED bits or not at all */
  fixed: boolean;
}

export interface ResolvedSite {
  bits: number;
  /** quant_start_step of the entry that set it (0 when absent) */
  startStep: number;
}

/** Per layer: its weight and input quantization; a side left out is not quantized. */
export type ResolvedConfig = Record<string, { weight?: ResolvedSite; input?: ResolvedSite }>;

/**
 * Each layer's weight and input bits under a config list. Every op_name must be a layer of the
 * model; first/last layers take only `fixedBits` (their batch norms exist for those bits alone).
 */
export function resolveConfigList(
  entries: readonly ConfigEntry[], layers: readonly ConfigLayer[], options: { source: string; model: string; fixedBits: number },
): ResolvedConfig {
  const { source, model, fixedBits } = options;
  const names = new Set(layers.map((l) => l.name));
  entries.forEach((e, i) => e.op_names?.forEach((n, j) => {
    if (!names.has(n)) throw fieldError(source, [i, 'op_names', j], `'${n}' is not a quantized layer of ${model} (${[...names].join(', ')})`);
  }));
  const lastMatch = (matches: (e: ConfigEntry) => boolean): [ConfigEntry, number] | undefined => {
    for (let i = entries.length - 1; i >= 0; i--) if (matches(entries[i]!)) return [entries[i]!, i];
    return undefined;
  };
  const reluEntry = lastMatch((e) => !e.op_names && kindsOf(e).includes('relu'));
  const resolved: ResolvedConfig = {};
  for (const layer of layers) {
    const own = lastMatch((e) => kindsOf(e).includes(layer.kind) && (!e.op_names || e.op_names.includes(layer.name)));
    const site = (match: [ConfigEntry, number] | undefined, type: QuantType): ResolvedSite | undefined => {
      if (!match) return undefined;
      const [e, i] = match;
      if (e.exclude || !e.quant_types!.includes(type)) return undefined;
      const bits = bitsOf(e, type);
      if (layer.fixed && bits !== fixedBits) {
        throw fieldError(source, typeof e.quant_bits === 'number' ? [i, 'quant_bits'] : [i, 'quant_bits', type],
          `${layer.name} is a first/last layer of ${model}, which mpq runs at ${fixedBits} bits or not at all, not ${bits} (exclude it or give it ${fixedBits})`);
      }
      return { bits, startStep: e.quant_start_step ?? 0 };
    };
    const weight = site(own, 'weight');
    // the layer's own 'input' setting comes before a ReLU 'output' one; the input quantizer is
    // the layer's, so excluding the layer leaves its input alone too
    const input = own?.[0].exclude ? undefined : site(own, 'input') ?? (layer.reluInput ? site(reluEntry, 'output') : undefined);
    if (weight || input) resolved[layer.name] = { ...(weight && { weight }), ...(input && { input }) };
  }
  if (Object.keys(resolved).length === 0) throw new UserError(`${source}: the config list quantizes nothing in ${model}`);
  return resolved;
}
