import { COMPRESSED_SINCE, readPacked } from '../export/packed.js';
import type { BackendName } from '../train/backend/index.js';
import { subset } from '../train/data.js';
import { evaluate, type Evaluation } from '../train/loops.js';
import { prepare } from '../train/run.js';
import { loadPackedModel, packedModelSource, type LoadedPackedModel } from './packed-model.js';
import { disposeModel } from '../train/models.js';

/** `mpq eval --packed`: test top-1 of the model a packed file holds, at its own policy. */
export async function evaluatePackedModel(o: {
  bytes: Uint8Array; path: string; limit?: number; backend?: BackendName; dataDir?: string; log?: (line: string) => void;
}): Promise<{ model: string; backend: string; test: Evaluation }> {
  const packed = readPacked(o.bytes, o.path);
  if (packed.version < COMPRESSED_SINCE) {
    o.log?.(`mpq: note: ${o.path} is a version-${packed.version} packed file, without a checksum: a corrupted byte would go unnoticed; `
      + `\`mpq pack --packed ${o.path} --out NEW.mpqp\` rewrites it with one (version ${COMPRESSED_SINCE} or later)`);
  }
  let loaded: LoadedPackedModel | undefined;
  const source = packedModelSource(packed, o.path);
  const { backend, data } = await prepare({ source, backend: o.backend, dataDir: o.dataDir }, () => {
    loaded = loadPackedModel(packed, o.path, source);
    return loaded.model;
  });
  const test = evaluate(loaded!.model, subset(data.test, o.limit), loaded!.policy);
  disposeModel(loaded!.model);
  return { model: loaded!.model.name, backend, test };
}
