import { backendChoice } from '../train/backend/choice.js';
import { FieldError, UserError } from '../util/errors.js';

/** Fields whose flag is not their kebab-case name, alike in every command (a command's own map comes first). */
const FIELD_FLAGS: Readonly<Record<string, string>> = {
  dataDir: '--data',
  policyPath: '--policy',
  configPath: '--config',
  'quantizer.nuq': '--nuq-*',
};

/**
 * A library option field's flag: `numSample` → `--num-sample`, a nested field by its last part
 * (`layers.fixed` → `--fixed`), a field set to false as its negation (`layers.fixFirstLast=false`
 * → `--no-fix-first-last`), unless the command (`flags`) or every command (FIELD_FLAGS) maps it otherwise.
 */
export function fieldFlag(field: string, flags: Readonly<Record<string, string>> = {}): string {
  const mapped = flags[field] ?? FIELD_FLAGS[field];
  if (mapped !== undefined) return mapped;
  const off = field.endsWith('=false');
  const name = (off ? field.slice(0, -'=false'.length) : field).split('.').pop()!;
  const kebab = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return off ? `--no-${kebab}` : FIELD_FLAGS[name] ?? `--${kebab}`;
}

/** A library FieldError as this command's UserError, its fields named as flags; any other error as it is. */
export function inFlags(err: unknown, flags: Readonly<Record<string, string>> = {}): unknown {
  return err instanceof FieldError ? new UserError(err.named((field) => fieldFlag(field, flags)), err.exitCode) : err;
}

/**
 * Wraps a command's action: a UserError becomes one line on stderr and its exit code (a library's
 * FieldError with its fields named as this command's flags: `flags` maps the fields whose flag is
 * not their kebab-case name); anything else is a bug, printed with its stack (exit 1).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void, flags: Readonly<Record<string, string>> = {}) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number') process.exitCode = code;
      // which backend ran and why: after the result, so that an error is always the one line
      const backend = backendChoice();
      if (backend !== undefined) process.stderr.write(`mpq: ${backend}\n`);
    } catch (thrown) {
      const err = inFlags(thrown, flags);
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
