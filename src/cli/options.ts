/**
 * The flags several commands share, defined once: one name for one idea in every command, the
 * same help words, defaults shown as numbers. Older names stay as aliases, said so in --help.
 * Light on purpose (no tfjs): `mpq search` loads it.
 */
import { Option, type Command } from 'commander';
import { BACKEND_NAMES, type BackendName } from '../train/backend/names.js';
import { TRAINABLE_ZOO_MODELS, ZOO_MODEL_NAMES } from '../model/zoo.js';
import { UserError } from '../util/errors.js';
import { parseInteger } from './run.js';

/** What `--model` takes in a command: every zoo model and layer tables (search), or the models mpq can run (the rest). */
export type ModelUse = 'search' | 'run';

/** `--model`, listing what the command really takes; `fallback` says what stands in when it is not given. */
export function modelOption(use: ModelUse, fallback: string): Option {
  const models = use === 'search'
    ? `${ZOO_MODEL_NAMES.join(' | ')}, or a model file (.onnx, tfjs model.json, layer-table .json)`
    : `${TRAINABLE_ZOO_MODELS.join(' | ')}, or a model file with its weights (.onnx, tfjs model.json)`;
  return new Option('--model <name|file>', `model: ${models}; default: ${fallback}`);
}

/** `--fixed` / `--searchable`: which layers keep 8 bits (every command that builds a model or a search). */
export function addLayerSelectionOptions(cmd: Command, fixedDefault = 'the policy\'s, else the first and last conv / dense'): Command {
  return cmd
    .option('--fixed <names...>', `layers kept at 8 bits (default: ${fixedDefault})`)
    .option('--searchable <names...>', 'the layers to search / quantize at searched bits; every other conv / dense is kept at 8 bits');
}

/** --model and the fixed-layer flags of every command that builds a model. */
export function addModelOptions(cmd: Command, fallback = 'the --from checkpoint\'s'): Command {
  return addLayerSelectionOptions(cmd.addOption(modelOption('run', fallback)));
}

/**
 * Shared flags whose default a command may apply itself (`applied: false`): then commander keeps
 * no default (the command can tell the flag was not given) and the help text says it.
 */
function withDefault(opt: Option, fallback: unknown, applied: boolean): Option {
  if (applied) return opt.default(fallback);
  opt.description += ` (default: ${String(fallback)})`;
  return opt;
}

export const backendOption = (what = 'tfjs backend', applied = true): Option =>
  withDefault(new Option('--backend <name>', `${what}: ${BACKEND_NAMES.join(' | ')}`), 'auto', applied);

export function backendFlag(value: unknown): BackendName {
  const name = String(value);
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) throw new UserError(`--backend: '${name}' is not one of ${BACKEND_NAMES.join(', ')}`);
  return name as BackendName;
}

export const dataOption = (what = 'dataset directory'): Option =>
  new Option('--data <dir>', `${what}: MNIST IDX files or CIFAR-10 binary batches (default: the bundled mnist digits)`);

export const jsonOption = (what = 'print one JSON object instead of the text'): Option => new Option('--json', what);

export const overwriteOption = (what: string): Option => new Option('--overwrite', `replace ${what}; without it that is refused`);

/** `--seed`: parsed here where its default is applied here, else by the command (with its own checks). */
export function seedOption(what: string, fallback: number, applied = true): Option {
  const opt = withDefault(new Option('--seed <n>', what), fallback, applied);
  return applied ? opt.argParser(parseInteger('--seed')) : opt;
}

export const limitOption = (what = 'test samples'): Option =>
  new Option('--limit <n>', `use only the first N ${what} (default: all)`).argParser(parseInteger('--limit'));

export const progressOption = (): Option => new Option('--no-progress', 'no progress bar (where stderr is not a terminal, none is drawn anyway)');

/**
 * Uniform weight / activation bits. Search and sweep take the same two flags as a BitOps target
 * (LIMPQ's `--wb` / `--ab`, aliases there); simulate lists of them (`--input-bits`, its old name).
 */
export function addBitsPairOptions(cmd: Command, o: { weight: string; act: string; value?: string; defaults?: [unknown, unknown]; parse?: boolean }): Command {
  const value = o.value ?? '<b>';
  const weight = new Option(`--weight-bits ${value}`, o.weight);
  const act = new Option(`--act-bits ${value}`, o.act);
  if (o.parse !== false) {
    weight.argParser(parseInteger('--weight-bits'));
    act.argParser(parseInteger('--act-bits'));
  }
  if (o.defaults) {
    weight.default(o.defaults[0]);
    act.default(o.defaults[1]);
  }
  return cmd.addOption(weight).addOption(act);
}

/** Which alias the user typed for an option (key: its attribute name), for messages that name the flag. */
const typedAliases = new WeakMap<object, Record<string, string>>();

/** The flag as the user typed it: `alias` when they gave the alias of `primary`, else `primary`. */
export function flagOf(o: object, key: string, primary: string): string {
  return typedAliases.get(o)?.[key] ?? primary;
}

/**
 * `alias` as a second name of `primary` (already on `cmd`): the same value form and parser, help
 * "alias of --x". Given both, one line says so.
 */
export function addAlias(cmd: Command, alias: string, primary: string, why = ''): Command {
  const main = cmd.options.find((opt) => opt.long === primary);
  if (!main) throw new Error(`addAlias: ${cmd.name()} has no ${primary}`);
  const opt = new Option(main.flags.replace(primary, alias), `alias of ${primary}${why ? ` (${why})` : ''}`);
  if (main.parseArg) opt.argParser(main.parseArg);
  cmd.addOption(opt);
  const key = main.attributeName();
  const aliasKey = opt.attributeName();
  cmd.hook('preAction', (_hooked, run) => {
    const value = run.getOptionValue(aliasKey);
    if (value === undefined) return;
    if (run.getOptionValueSource(key) === 'cli') throw new UserError(`${alias}: alias of ${primary}; give one of them`);
    run.setOptionValueWithSource(key, value, 'cli');
    run.setOptionValueWithSource(aliasKey, undefined, 'default');
    const values = run.opts();
    typedAliases.set(values, { ...typedAliases.get(values), [key]: alias });
  });
  return cmd;
}

/** --help shows defaults as the values they are: `(default: 3)`, `(default: 6 5 4 3 2)`, not `"3"` or `["6", …]`. */
export function showDefaultsPlainly(cmd: Command): void {
  for (const opt of cmd.options) {
    const v = opt.defaultValue;
    if (v === undefined || typeof v === 'boolean' || opt.defaultValueDescription !== undefined) continue;
    opt.defaultValueDescription = Array.isArray(v) ? v.join(' ') : String(v);
  }
  for (const sub of cmd.commands) showDefaultsPlainly(sub);
}

/**
 * An object of fixed field names (not one keyed by layer names) with its keys in snake_case, as
 * every --json has them; `deep`: the objects and lists within it too, which must be records of
 * fixed names as well (a run's quantizer options: `nuq: { opt_mode, buckets: { type, size } }`).
 */
export function snakeKeys(o: object, deep = false): Record<string, unknown> {
  const value = (v: unknown): unknown => (!deep || v === null || typeof v !== 'object' ? v : Array.isArray(v) ? v.map(value) : snakeKeys(v, true));
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value(v)]));
}
