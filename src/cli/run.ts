import { backendChoice } from '../train/backend/choice.js';
import { UserError } from '../util/errors.js';

/**
 * Wraps a command's action: a UserError becomes one line on stderr and its exit code; anything
 * else is a bug, printed with its stack (exit 1).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number') process.exitCode = code;
      // which backend ran and why: after the result, so that an error is always the one line
      const backend = backendChoice();
      if (backend !== undefined) process.stderr.write(`mpq: ${backend}\n`);
    } catch (err) {
      if (err instanceof UserError) {
        process.stderr.write(`mpq: ${err.message}\n`);
        process.exitCode = err.exitCode;
      } else {
        throw err;
      }
    }
  };
}

/** Parse a number flag value, naming the flag when it is not one. */
export function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new UserError(`${flag}: '${value}' is not a number`);
    return n;
  };
}

/** Parse an integer flag value. */
export function parseInteger(flag: string) {
  return (value: string): number => {
    const n = parseNumber(flag)(value);
    if (!Number.isInteger(n)) throw new UserError(`${flag}: '${value}' is not an integer`);
    return n;
  };
}
