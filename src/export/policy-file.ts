import { z } from 'zod';
import { describeZodError, parseWithSchema, readJsonFile } from '../util/json-file.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Policy } from './policy.js';

/** Zod error options whose message says what was expected, and "missing" when the field is absent. */
function expected(what: string) {
  return {
    error: (issue: { input?: unknown }) => (issue.input === undefined ? `missing (expected ${what})` : `expected ${what}`),
  };
}

const positiveInt = () =>
  z.number(expected('a positive integer')).int(expected('a positive integer')).positive(expected('a positive integer'));
const nonNegative = () => z.number(expected('a number >= 0')).nonnegative(expected('a number >= 0'));
const nonEmptyString = () => z.string(expected('a non-empty string')).min(1, expected('a non-empty string'));

const policyLayerSchema = z.strictObject({
  name: nonEmptyString(),
  weightBits: positiveInt(),
  actBits: positiveInt(),
  macs: nonNegative(),
  params: nonNegative(),
});

const policySchema = z
  .strictObject({
    format: z.literal('mpq-policy', expected("'mpq-policy'")),
    version: z.literal(1, expected('1 (the only policy version this mpq reads)')),
    model: nonEmptyString(),
    bits: z.array(positiveInt(), expected('an array of bit-widths')).min(1, expected('at least one bit-width')),
    layers: z.array(policyLayerSchema, expected('an array of layers')).min(1, expected('at least one layer')),
    fixed: z.array(policyLayerSchema, expected('an array of layers')),
    objective: z.number(expected('a number')).optional(),
    bitops: nonNegative().optional(),
    compressionRatio: z.number(expected('a positive number')).positive(expected('a positive number')).optional(),
    sizeMb: nonNegative().optional(),
    constraints: z
      .record(
        z.string(),
        z.union([z.number(), z.boolean(), z.string(), z.null()], expected('a number, boolean, string or null')),
        expected('an object'),
      )
      .optional(),
    indicators: z
      .strictObject(
        {
          path: z.string(expected('a string')),
          sha256: z.string(expected('a sha256 hex digest')).regex(/^[0-9a-f]{64}$/, expected('a sha256 hex digest')),
        },
        expected('an object { path, sha256 } or null'),
      )
      .nullable()
      .optional(),
    solver: z.string(expected('a string')).optional(),
    seed: z.number(expected('an integer or null')).int(expected('an integer or null')).nullable().optional(),
    command: z.string(expected('a string')).optional(),
    createdAt: z.string(expected('a string')).optional(),
  }, expected('a JSON object'))
  .superRefine((policy, ctx) => {
    // names key LIMPQ's excepts, NNI's op_names and HAWQ's bit_config: one layer, one name
    const seen = new Set<string>();
    for (const group of ['layers', 'fixed'] as const) {
      policy[group].forEach((layer, index) => {
        if (seen.has(layer.name)) {
          ctx.addIssue({ code: 'custom', path: [group, index, 'name'], message: `duplicate layer name '${layer.name}'` });
        }
        seen.add(layer.name);
      });
    }
  });

// Compile-time guard: a field added to Policy must be added to the schema (and the reverse).
type ParsedPolicy = z.infer<typeof policySchema>;
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
type Assert<T extends true> = T;
type PolicySchemaMatchesPolicy = Assert<SameKeys<ParsedPolicy, Policy>>;

/**
 * Write a policy as pretty JSON, atomically. The policy is validated first, so a file this writes
 * always reads back; a policy that fails is a bug in its producer, not a user error.
 */
export function writePolicy(path: string, p: Policy): void {
  const result = policySchema.safeParse(p);
  if (!result.success) throw new Error(`refusing to write an invalid policy to ${path}: ${describeZodError(result.error)}`);
  writeFileAtomic(path, `${JSON.stringify(p, null, 2)}\n`);
}

/** Read and validate a policy file; every problem is a one-line UserError naming the file and field. */
export function readPolicy(path: string): Policy {
  return parseWithSchema(policySchema, readJsonFile(path, 'policy'), path);
}
