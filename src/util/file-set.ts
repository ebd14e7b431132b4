import { lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from './errors.js';
import { fsReason, makeDirectory, processAlive } from './fs.js';

/**
 * A folder whose files are replaced all at once. `DIR` is a symbolic link to a hidden sibling
 * folder `.DIR.<stamp>` holding one whole set; a new set is written into a fresh sibling
 * (`.DIR.<stamp>.partial` while it is written) and swapped in by renaming a new link over `DIR`,
 * one atomic rename. Readers and interruptions see the old set or the new one, never a mix.
 * What a killed writer leaves (a `.partial` folder, a link not yet renamed, a set no longer
 * linked) is cleaned by the next writer of the same `DIR`.
 */
export class FileSet {
  private constructor(
    readonly dir: string,
    private readonly partial: string,
    private readonly complete: string,
  ) {}

  /**
   * Check `dir` and clean what killed writers left; throws a UserError (naming `flag`) when `dir`
   * holds anything but a set of `names`. Call it before long work, so a bad `--out` fails first.
   */
  static check(dir: string, names: readonly string[], flag: string): void {
    const at = resolve(dir);
    makeDirectory(`${flag} ${dir}`, dirname(at)); // node's recursive mkdir never returns under /proc
    recover(at);
    const stat = lstatOrNull(at);
    if (!stat || stat.isSymbolicLink()) {
      if (stat && !isOurs(at, readlinkSync(at))) throw new UserError(`${flag} ${dir}: a symbolic link mpq did not make; give another folder`);
      return;
    }
    if (!stat.isDirectory()) throw new UserError(`${flag} ${dir}: not a folder`);
    const others = readdirSync(at).filter((f) => !names.includes(f) && !f.endsWith('.tmp'));
    if (others.length) throw new UserError(`${flag} ${dir}: holds files that are not a sweep's (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}); give a folder of its own`);
  }

  /** A fresh, empty folder for the next set of `dir` (checked as `check` does). */
  static begin(dir: string, names: readonly string[], flag: string): FileSet {
    FileSet.check(dir, names, flag);
    const at = resolve(dir);
    // a fresh name, and later than the linked set's: two sets within one millisecond of one process
    // took the same name, and the second could not be renamed onto the first (ENOTEMPTY)
    const named = (stamp: number) => join(dirname(at), `.${basename(at)}.${stamp}-${process.pid}`);
    let stamp = Date.now();
    while (lstatOrNull(named(stamp)) || lstatOrNull(`${named(stamp)}.partial`)) stamp++;
    const complete = named(stamp);
    const partial = `${complete}.partial`;
    try {
      mkdirSync(partial);
    } catch (err) {
      // e.g. under /proc, or a folder that became read-only: one line, as every write failure
      throw new UserError(`${flag} ${dir}: cannot make the new set's folder beside it (${fsReason(err)})`);
    }
    return new FileSet(at, partial, complete);
  }

  /** Write one file of the set (nobody sees it before `commit`). */
  write(name: string, data: string | Uint8Array): void {
    writeFileSync(join(this.partial, name), data);
  }

  /**
   * Swap the new set in. A plain folder of an earlier mpq at `dir` becomes a set first (a
   * writer killed between those two renames leaves `dir` missing and is mended by the next).
   */
  commit(): void {
    const parent = dirname(this.dir);
    renameSync(this.partial, this.complete);
    const previous = lstatOrNull(this.dir);
    let old: string | null = null;
    if (previous?.isSymbolicLink()) old = join(parent, readlinkSync(this.dir));
    else if (previous?.isDirectory()) {
      old = join(parent, `.${basename(this.dir)}.0-${process.pid}`);
      renameSync(this.dir, old);
    }
    const link = `${this.complete}.link`;
    symlinkSync(basename(this.complete), link);
    renameSync(link, this.dir);
    if (old) rmSync(old, { recursive: true, force: true });
  }

  /** Drop the new set unwritten: `dir` keeps what it had. */
  abandon(): void {
    rmSync(this.partial, { recursive: true, force: true });
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** `.NAME.<ms>-<pid>`, with `.partial` or `.link` while a writer works on it. */
function parseEntry(dirName: string, entry: string): { stamp: number; pid: number; kind: 'set' | 'partial' | 'link' } | null {
  const m = new RegExp(`^\\.${escapeRegExp(dirName)}\\.(\\d+)-(\\d+)(?:\\.(partial|link))?$`).exec(entry);
  return m ? { stamp: Number(m[1]), pid: Number(m[2]), kind: (m[3] as 'partial' | 'link' | undefined) ?? 'set' } : null;
}

function isOurs(dir: string, target: string): boolean {
  return parseEntry(basename(dir), target)?.kind === 'set';
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Mend what killed writers of `dir` left: remove their partial sets and links; if `dir` is
 * missing (killed between the two renames of a first commit), link the newest whole set; remove
 * whole sets that `dir` no longer links.
 */
function recover(dir: string): void {
  const parent = dirname(dir);
  const name = basename(dir);
  const entries = readdirSync(parent).flatMap((entry) => {
    const e = parseEntry(name, entry);
    return e ? [{ entry, ...e }] : [];
  });
  for (const e of entries) {
    if (e.kind !== 'set' && !processAlive(e.pid)) rmSync(join(parent, e.entry), { recursive: true, force: true });
  }
  const sets = entries.filter((e) => e.kind === 'set').sort((a, b) => b.stamp - a.stamp);
  const stat = lstatOrNull(dir);
  if (!stat && sets.length) {
    const link = join(parent, `.${name}.${Date.now()}-${process.pid}.link`);
    symlinkSync(sets[0].entry, link);
    renameSync(link, dir);
  }
  const linked = lstatOrNull(dir)?.isSymbolicLink() ? readlinkSync(dir) : null;
  // a live writer's set may be between its renames: not garbage
  for (const e of sets) if (e.entry !== linked && !processAlive(e.pid)) rmSync(join(parent, e.entry), { recursive: true, force: true });
}
