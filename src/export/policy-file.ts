import * as v from 'valibot';
import { bitsProblem, FULL_PRECISION_BITS, SUPPORTED_BITS } from '../quant/bits.js';
import { readJsonFile } from '../util/json-file.js';
import { describeIssues, parseWithSchema, pathTo, strictFields } from '../util/schema.js';
import { writeOutput } from '../util/fs.js';
import type { Policy } from './policy.js';

/** A layer's bits: a width mpq runs, or full precision. */
const layerBits = () => {
  const what = `expected a bit-width in ${SUPPORTED_BITS.min}..${SUPPORTED_BITS.max} or ${FULL_PRECISION_BITS} (full precision)`;
  return v.pipe(v.number(what), v.check((b) => bitsProblem(b, SUPPORTED_BITS, { fullPrecision: true }) === undefined, what));
};
const candidateBits = () => {
  const what = `expected a bit-width in ${SUPPORTED_BITS.min}..${SUPPORTED_BITS.max}`;
  return v.pipe(v.number(what), v.check((b) => bitsProblem(b) === undefined, what));
};
const nonNegative = () => v.pipe(v.number('expected a number >= 0'), v.minValue(0, 'expected a number >= 0'));
const nonEmptyString = () => v.pipe(v.string('expected a non-empty string'), v.minLength(1, 'expected a non-empty string'));
const aString = () => v.string('expected a string');

const policyLayerSchema = strictFields({
  name: nonEmptyString(),
  weightBits: layerBits(),
  actBits: layerBits(),
  macs: nonNegative(),
  params: nonNegative(),
}, 'expected a layer object');
const layers = () => v.array(policyLayerSchema, 'expected an array of layers');

const policySchema = v.pipe(
  strictFields({
    format: v.literal('mpq-policy', "expected 'mpq-policy'"),
    version: v.literal(1, 'expected 1 (the only policy version this mpq reads)'),
    model: nonEmptyString(),
    bits: v.pipe(v.array(candidateBits(), 'expected an array of bit-widths'), v.minLength(1, 'expected at least one bit-width')),
    layers: v.pipe(layers(), v.minLength(1, 'expected at least one layer')),
    fixed: layers(),
    objective: v.optional(v.number('expected a number')),
    bitops: v.optional(nonNegative()),
    compressionRatio: v.optional(v.pipe(v.number('expected a positive number'), v.gtValue(0, 'expected a positive number'))),
    sizeMb: v.optional(nonNegative()),
    constraints: v.optional(v.record(
      v.string(),
      v.union([v.number(), v.boolean(), v.string(), v.null()], 'expected a number, boolean, string or null'),
      'expected an object',
    )),
    indicators: v.optional(v.nullable(strictFields({
      path: aString(),
      sha256: v.pipe(v.string('expected a sha256 hex digest'), v.regex(/^[0-9a-f]{64}$/, 'expected a sha256 hex digest')),
    }, 'expected an object { path, sha256 } or null'))),
    solver: v.optional(aString()),
    seed: v.optional(v.nullable(v.pipe(v.number('expected an integer or null'), v.integer('expected an integer or null')))),
    command: v.optional(aString()),
    createdAt: v.optional(aString()),
  }, 'expected a JSON object'),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    // names key LIMPQ's excepts, NNI's op_names and HAWQ's bit_config: one layer, one name
    const seen = new Set<string>();
    for (const group of ['layers', 'fixed'] as const) {
      dataset.value[group].forEach((layer, index) => {
        if (seen.has(layer.name)) addIssue({ message: `duplicate layer name '${layer.name}'`, path: pathTo(group, index, 'name') });
        seen.add(layer.name);
      });
    }
  }),
);

// Compile-time guard: a field added to Policy must be added to the schema (and the reverse).
type ParsedPolicy = v.InferOutput<typeof policySchema>;
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
type Assert<T extends true> = T;
type PolicySchemaMatchesPolicy = Assert<SameKeys<ParsedPolicy, Policy>>;

/**
 * A policy as the pretty JSON of its file. The policy is validated first, so a file of this text
 * always reads back; a policy that fails is a bug in its producer, not a user error.
 */
export function policyText(p: Policy, path: string): string {
  const result = v.safeParse(policySchema, p);
  if (!result.success) throw new Error(`refusing to write an invalid policy to ${path}: ${describeIssues(result.issues)}`);
  return `${JSON.stringify(p, null, 2)}\n`;
}

/** Write a policy file (policyText), atomically. */
export function writePolicy(path: string, p: Policy): void {
  writeOutput(path, policyText(p, path));
}

/** Read and validate a policy file; every problem is a one-line UserError naming the file and field. */
export function readPolicy(path: string): Policy {
  return parseWithSchema(policySchema, readJsonFile(path, 'policy'), path);
}
