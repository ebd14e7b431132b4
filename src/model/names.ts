import { basename, dirname, extname, resolve } from 'node:path';
import { isZooModel } from './zoo.js';

/**
 * The name of the model a file holds: the file name without its extension, or for a tfjs
 * `model.json` its directory's name (tfjs keeps one model per directory). A zoo name is itself.
 */
export function modelName(spec: string): string {
  if (isZooModel(spec)) return spec;
  const file = basename(spec);
  return /^model\.json$/i.test(file) ? basename(dirname(resolve(spec))) : basename(file, extname(file));
}

