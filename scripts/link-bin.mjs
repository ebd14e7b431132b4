/**
 * After the build (`npm ci` runs it as `prepare`): make the CLI executable and link it as
 * node_modules/.bin/mpq, where `npx mpq` finds it and runs it at once (0.8 s here).
 * package.json has no `bin` on purpose: npx treats a project whose own package.json has a bin
 * named as the command as a package to install into its cache, with all its dependencies,
 * before the first output (21 s here in a fresh clone).
 */
import { chmodSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';

const main = 'dist/src/cli/main.js';
const link = 'node_modules/.bin/mpq';
const target = '../../dist/src/cli/main.js'; // relative to node_modules/.bin

chmodSync(main, 0o755);
let current = null;
try {
  current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : 'not a link';
} catch {
  // no link yet
}
if (current !== target) {
  try {
    if (current !== null) rmSync(link);
    mkdirSync('node_modules/.bin', { recursive: true });
    symlinkSync(target, link);
  } catch (err) {
    // the build stands without the link: npx then falls back to its slow path
    process.stderr.write(`link-bin: could not link ${link} (${err.message}); \`npx mpq\` will be slow, \`node ${main}\` works\n`);
  }
}
