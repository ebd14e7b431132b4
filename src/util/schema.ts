import * as v from 'valibot';
import { UserError } from './errors.js';

/**
 * Input files checked against valibot schemas, every problem said on one line with its field path.
 * Apart from json-file.ts so that reading JSON does not load the schema library.
 */

/** Validate with a valibot schema; a failure is `file: field.path: message (and N more problems)`. */
export function parseWithSchema<T extends v.GenericSchema>(schema: T, data: unknown, path: string): v.InferOutput<T> {
  const result = v.safeParse(schema, data);
  if (result.success) return result.output;
  throw new UserError(`${path}: ${describeIssues(result.issues)}`);
}

/**
 * One line for the first problem, with a count of the rest. Unknown fields come first: a
 * misspelt field name also explains the field reported missing.
 */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const unknownKeys = issues.filter(isUnknownKey);
  const groups = new Map<string, string[]>();
  for (const issue of unknownKeys) {
    const where = fieldPath(issue.path!.slice(0, -1));
    groups.set(where, [...(groups.get(where) ?? []), `'${String(issue.input)}'`]);
  }
  const lines = [
    ...[...groups].map(([where, keys]) => located(where, `unknown field${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`)),
    ...issues.filter((issue) => !isUnknownKey(issue)).map(describeIssue),
  ];
  const more = lines.length - 1;
  return `${lines[0]}${more > 0 ? ` (and ${more} more problem${more > 1 ? 's' : ''})` : ''}`;
}

/** A strict object's key that is not one of its fields. */
export function isUnknownKey(issue: v.BaseIssue<unknown>): boolean {
  return issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never' && issue.path?.at(-1)?.origin === 'key';
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  const where = fieldPath(issue.path ?? []);
  const missing = issue.input === undefined && issue.path?.at(-1)?.origin === 'key';
  // valibot's own messages ("Invalid type: Expected number but received "8"") said shorter
  const message = issue.message.startsWith('Invalid ')
    ? (missing ? 'missing' : `expected ${issue.expected}, got ${issue.received}`)
    : issue.message;
  return located(where, message);
}

const located = (where: string, message: string): string => (where ? `${where}: ${message}` : message);

/** `layers[3].weightBits` from valibot's path items (keys `layers`, 3, `weightBits`). */
function fieldPath(path: readonly { key: unknown }[]): string {
  return path.reduce<string>(
    (text, { key }) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key)),
    '',
  );
}

/** A whole number ≥ 0 (counts, shapes, offsets). */
export const nonNegativeInteger = v.pipe(v.number(), v.integer('expected an integer'), v.minValue(0, 'expected an integer ≥ 0'));

/** `schema` for a JSON object: an array or any other value is `message` (valibot takes arrays for objects). */
export function jsonObject<S extends v.GenericSchema<Record<string, unknown>>>(schema: S, message: string) {
  return v.pipe(v.custom<Record<string, unknown>>((x) => typeof x === 'object' && x !== null && !Array.isArray(x), message), schema);
}

/**
 * A JSON object with exactly these fields: any other value is `message`, an unknown field is
 * named, and a missing field says `missing (…)` with the field schema's own message.
 */
export function strictFields<const E extends v.ObjectEntries>(entries: E, message: string) {
  return jsonObject(v.strictObject(entries, (issue) => {
    const last = issue.path?.at(-1);
    if (issue.input !== undefined || last?.origin !== 'key') return issue.message;
    const expected = (entries[String(last.key)] as { message?: unknown } | undefined)?.message;
    return typeof expected === 'string' ? `missing (${expected})` : 'missing';
  }), message);
}

/** A valibot path item for an issue a check adds (describeIssues reads only the keys). */
export function pathTo(...keys: Array<string | number>): [v.IssuePathItem, ...v.IssuePathItem[]] {
  return keys.map((key) => ({ type: 'unknown', origin: 'value', input: undefined, key, value: undefined })) as unknown as [v.IssuePathItem, ...v.IssuePathItem[]];
}
