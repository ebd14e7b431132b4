import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { UserError } from './errors.js';

/**
 * Read a JSON file. A missing, unreadable, empty or malformed file is a one-line UserError naming
 * the file (`what` says what kind of file was expected).
 */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${path}: no such ${what} file`);
    if (code === 'EISDIR') throw new UserError(`${path}: is a directory, not a ${what} file`);
    throw new UserError(`${path}: cannot read (${code ?? String(err)})`);
  }
  if (text.trim() === '') throw new UserError(`${path}: empty file (expected a ${what} JSON object)`);
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 may quote a snippet of the input, newlines included: keep the message on one line
    throw new UserError(`${path}: not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
}

/** Validate with a zod schema; a failure is `file: field.path: message (and N more problems)`. */
export function parseWithSchema<T extends z.ZodType>(schema: T, data: unknown, path: string): z.infer<T> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  throw new UserError(`${path}: ${describeZodError(result.error)}`);
}

/** One line for the first problem, with a count of the rest. */
export function describeZodError(error: z.ZodError): string {
  const [first, ...rest] = error.issues;
  const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : '';
  return `${describeIssue(first!)}${more}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = fieldPath(issue.path);
  const message = issue.code === 'unrecognized_keys'
    ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`
    : issue.message;
  return where ? `${where}: ${message}` : message;
}

/** `layers[3].weightBits` from zod's `['layers', 3, 'weightBits']`. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key)),
    '',
  );
}
