/**
 * The ONNX importer on what torch.onnx.export writes for torchvision's resnet18 and mobilenet_v2
 * (random weights, exported by bench/onnx-torchvision.py when Debian's python3-torch and
 * python3-torchvision are installed): each imported layer table against mpq's zoo table
 * (`resnet18`, `mobilenetv2`) layer by layer, and mpq's full-precision logits against
 * onnxruntime's on the same images, with the time each takes. Skipped without Python's torch.
 *
 * `node dist/bench/onnx-import.js [--keep-bn]`
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { graphLayers } from '../src/model/graph.js';
import { readOnnxModel } from '../src/model/onnx-import.js';
import { zooLayers } from '../src/model/zoo.js';
import { initBackend } from '../src/train/backend/index.js';
import { createModel } from '../src/train/models.js';
import { Prng } from '../src/util/prng.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(here, '../../bench/onnx-torchvision.py');
const ZOO_NAME: Record<string, string> = { resnet18: 'resnet18', mobilenet_v2: 'mobilenetv2' };

export interface OnnxImportRow {
  model: string;
  layers: number;
  /** layers whose name, weight count and MACs equal the zoo's */
  matching: number;
  firstMismatch?: string;
  importMs: number;
  maxAbsDiff: number;
  mpqMs: number;
  ortMs: number;
}

export async function benchOnnxImport(keepBn = false): Promise<OnnxImportRow[] | string> {
  const exported = spawnSync('/usr/bin/python3', [SCRIPT, ...(keepBn ? ['--keep-bn'] : [])], { encoding: 'utf8' });
  if (exported.status !== 0) return `onnx import bench skipped: ${exported.stderr.trim().split('\n').at(-1) ?? `exit ${exported.status}`}`;
  const { dir, models } = JSON.parse(exported.stdout.trim().split('\n').at(-1)!) as { dir: string; models: Record<string, string> };
  const ort = await import('onnxruntime-node');
  await initBackend('wasm');
  const rows: OnnxImportRow[] = [];
  try {
    for (const [name, path] of Object.entries(models)) {
      let started = performance.now();
      const imported = readOnnxModel(path);
      const importMs = performance.now() - started;
      const mine = graphLayers(imported.graph);
      const zoo = zooLayers(ZOO_NAME[name]);
      const same = mine.filter((l, i) => zoo[i] && l.name === zoo[i].name && l.params === zoo[i].params && l.macs === zoo[i].macs).length;
      const mismatch = mine.findIndex((l, i) => !zoo[i] || l.name !== zoo[i].name || l.params !== zoo[i].params || l.macs !== zoo[i].macs);
      const n = 2;
      const rng = new Prng(1);
      const images = Float32Array.from({ length: n * 3 * 224 * 224 }, () => rng.normal());
      const model = createModel(imported);
      // ONNX takes NCHW; mpq's forward takes NHWC
      const nhwc = tf.transpose(tf.tensor4d(images, [n, 3, 224, 224]), [0, 2, 3, 1]) as tf.Tensor4D;
      started = performance.now();
      const logits = model.forward(nhwc, {}, false);
      const ours = logits.dataSync();
      const mpqMs = performance.now() - started;
      const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
      started = performance.now();
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', images, [n, 3, 224, 224]) });
      const ortMs = performance.now() - started;
      const ref = out[session.outputNames[0]].data as Float32Array;
      let maxAbsDiff = 0;
      for (let i = 0; i < ref.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[i] - ours[i]));
      await session.release();
      rows.push({
        model: name, layers: mine.length, matching: same, ...(mismatch >= 0 ? { firstMismatch: `${mine[mismatch]?.name} vs ${zoo[mismatch]?.name}` } : {}),
        importMs, maxAbsDiff, mpqMs, ortMs,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function formatOnnxImport(result: OnnxImportRow[] | string, keepBn = false): string {
  if (typeof result === 'string') return result;
  return [
    `ONNX import of torchvision models (random weights, batch norm ${keepBn ? 'kept as nodes' : 'folded by the exporter'}), against the zoo table and onnxruntime:`,
    ...result.map((r) => `  ${r.model}: ${r.matching}/${r.layers} layers equal the zoo's (name, weights, MACs)${r.firstMismatch ? `, first mismatch ${r.firstMismatch}` : ''}; `
      + `import ${r.importMs.toFixed(0)} ms; logits max abs diff ${r.maxAbsDiff.toExponential(2)}; forward of 2 images mpq (wasm) ${r.mpqMs.toFixed(0)} ms, onnxruntime ${r.ortMs.toFixed(0)} ms (${(r.mpqMs / r.ortMs).toFixed(1)}x)`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const keepBn = process.argv.includes('--keep-bn');
  console.log(formatOnnxImport(await benchOnnxImport(keepBn), keepBn));
}
