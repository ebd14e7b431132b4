import { readFileSync } from 'node:fs';
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
