import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

/** The package's own folder (holding the shipped `indicators/` and `policies/`), from dist/src/util. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
