import { existsSync, readFileSync } from 'node:fs';
import type { z } from 'zod';
import { UserError } from './errors.js';

/** Read a JSON file; a missing or malformed file is a one-line UserError naming it. */
export function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new UserError(`${path}: no such ${what} file`);
  const text = readFileSync(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

/** Validate with a zod schema; the first issue becomes `file: field.path: message`. */
export function parseWithSchema<T extends z.ZodType>(schema: T, data: unknown, path: string): z.infer<T> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue.path.length ? formatPath(issue.path) : '(top level)';
  throw new UserError(`${path}: ${field}: ${issue.message}`);
}

function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}
