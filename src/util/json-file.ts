import { readInputFile } from './fs.js';
import { UserError } from './errors.js';

/**
 * Read a JSON file. A missing, unreadable, special, oversized, empty or malformed file is a
 * one-line UserError naming the file (`what` says what kind of file was expected).
 */
export function readJsonFile(path: string, what: string): unknown {
  const text = readInputFile(path, what).toString('utf8');
  if (text.trim() === '') throw new UserError(`${path}: empty file (expected a ${what} JSON object)`);
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8 may quote a snippet of the input, newlines included: keep the message on one line
    throw new UserError(`${path}: not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
}
