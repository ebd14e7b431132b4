/**
 * onnxruntime-node, the referee for ONNX files: runs a model file on Float32 inputs. A dev
 * dependency only; where its native binary does not load, `ORT_SKIP` says why and tests that need
 * it skip (`test(name, { skip: ORT_SKIP }, ...)`).
 */
import { join } from 'node:path';
import { REPO_ROOT } from './support.js';

type Ort = typeof import('onnxruntime-node');

let ort: Ort | undefined;
let loadError = '';
try {
  ort = await import('onnxruntime-node');
} catch (err) {
  loadError = (err as Error).message.split('\n')[0];
}

/** false when onnxruntime-node loaded, else the reason to skip. */
export const ORT_SKIP: string | false = ort === undefined ? `onnxruntime-node does not load: ${loadError}` : false;

export const ONNX_FIXTURES_DIR = join(REPO_ROOT, 'test/fixtures/onnx');

export interface FloatTensor {
  data: Float32Array;
  dims: number[];
}

/**
 * Runs the model file at `path` on one CPU thread (reproducible, and the machine is shared) and
 * returns every output as Float32 (other output types are an error: the fixtures and exports
 * mpq checks end in float logits).
 */
export async function runOnnx(path: string, inputs: Record<string, FloatTensor>): Promise<Record<string, FloatTensor>> {
  if (ort === undefined) throw new Error(ORT_SKIP as string);
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'] });
  try {
    const feeds = Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, new ort!.Tensor('float32', t.data, t.dims)]));
    const results = await session.run(feeds);
    return Object.fromEntries(
      Object.entries(results).map(([name, t]) => {
        if (t.type !== 'float32') throw new Error(`${path}: output ${name} is ${t.type}, not float32`);
        return [name, { data: t.data as Float32Array, dims: [...t.dims] }];
      }),
    );
  } finally {
    await session.release();
  }
}
