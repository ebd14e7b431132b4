import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { FieldError, type FieldNamer } from '../util/errors.js';
import { readInputFile } from '../util/fs.js';
import { PACKAGE_ROOT } from '../util/paths.js';

/** Where cached indicators live: the working directory's `indicators/`, then the shipped ones. */
export function indicatorDirs(): string[] {
  return [...new Set([resolve('indicators'), join(PACKAGE_ROOT, 'indicators')])].filter((d) => existsSync(d)).map(shortPath);
}

/** Paths under the working directory are shown (and recorded in policies) relative to it. */
function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') ? rel : p;
}

function modelOf(path: string): string | undefined {
  if (!path.endsWith('.json')) return undefined;
  try {
    const meta = JSON.parse(readInputFile(path, 'indicators').toString('utf8'))?.meta;
    return typeof meta?.model === 'string' ? meta.model : undefined;
  } catch {
    return undefined; // unreadable files are reported when (if) they are chosen
  }
}

/**
 * Without an indicators file given: the cached file for the model (its `meta.model`, or its file
 * name), or, with no model named, the newest cached file. `howTo` says how to get some, naming
 * fields by the namer.
 */
export function findCachedIndicators(model?: string, howTo = (n: FieldNamer) => `make them with \`mpq pretrain\` or pass ${n('indicators')} FILE (.json or LIMPQ .pkl)`): string {
  const dirs = indicatorDirs();
  const files = dirs.flatMap((d) =>
    readdirSync(d).filter((f) => /\.(json|pkl)$/i.test(f)).map((f) => join(d, f)),
  );
  if (files.length === 0) throw new FieldError((n) => `no cached indicators in ${dirs.join(' or ') || 'indicators/'}: ${howTo(n)}`);
  if (model !== undefined) {
    const stem = basename(model).replace(/\.json$/i, '');
    const match = files.find((f) => modelOf(f) === stem) ?? files.find((f) => basename(f).replace(/\.(json|pkl)$/i, '') === stem);
    if (!match) throw new FieldError((n) => `${n('model')} ${model}: no cached indicators for it in ${dirs.join(', ')}; ${howTo(n)}`);
    return match;
  }
  return files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}
