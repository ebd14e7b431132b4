import { fileURLToPath } from 'node:url';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UserError } from './errors.js';

/** The package's own folder (holding the shipped `indicators/` and `policies/`), from dist/src/util. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * A name read from an input (a model name in a layer table, indicators or a packed file) made safe
 * to be one file or folder name: letters, digits, `-`, `_` and `.`; anything else becomes `-`, no
 * leading dot (so never `..` or a hidden file), at most 100 characters. A name with nothing left is
 * `model`. It never chooses a directory.
 */
export function safeFileName(name: string): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 100)
    .replace(/[.-]+$/, '');
  return cleaned === '' ? 'model' : cleaned;
}

/** `path` is `folder` itself or inside it, after resolving `..` (not symlinks). */
export function isUnder(folder: string, path: string): boolean {
  const rel = relative(resolve(folder), resolve(path));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * A default output path: `folder/name` with `name` made safe (safeFileName), checked to stay under
 * `folder`. Every default file or folder name built from an input's model name goes through this.
 */
export function defaultOutputPath(folder: string, name: string): string {
  const path = join(folder, safeFileName(name));
  if (!isUnder(folder, path)) throw new UserError(`${path}: the default output path leaves ${folder}/ (refusing to write there)`);
  return path;
}

/**
 * A file named inside a file of `dir` (a checkpoint's weights file in its model.json): a plain file
 * name in `dir`, never a path that leaves it. `where` names the field for the message.
 */
export function fileInDirectory(dir: string, name: string, where: string): string {
  if (name === '' || name !== basename(name) || name === '.' || name === '..' || name.includes('\\')) {
    throw new UserError(`${where}: '${name}' is not a file name in ${dir} (a checkpoint names only its own files)`);
  }
  const path = join(dir, name);
  if (!isUnder(dir, path)) throw new UserError(`${where}: '${name}' leaves ${dir}`);
  return path;
}
