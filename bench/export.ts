/**
 * `mpq export-model` files: per model and policy, the ONNX file's size at opsets 13 and 21 (and in
 * full precision) against FP32 weights / compression ratio, and inference throughput on one batch
 * of digits: onnxruntime (one thread) running the QDQ and FP files, against mpq's own forward on
 * tfjs-wasm (one thread) — the fake-quantized model at the policy, and in full precision.
 *
 * Weights are seeded (the imported fixture brings its own) and LSQ steps are initialised from one
 * training batch: sizes and speed do not depend on training.
 *
 *   node dist/bench/export.js [--batch 256]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { readPolicy } from '../src/export/policy-file.js';
import { exportModel, exportSize, type ExportSize } from '../src/export/model-export.js';
import type { ExportOpset } from '../src/export/onnx-model.js';
import { readOnnxModel } from '../src/model/onnx-import.js';
import { readOnnxFile } from '../src/model/onnx/proto.js';
import type { ModelSource } from '../src/model/resolve.js';
import { initBackend } from '../src/train/backend/index.js';
import { loadMnistPackage } from '../src/train/data.js';
import { createModel, disposeModel, type BitsPolicy, type QuantModel } from '../src/train/models.js';
import { FULL_PRECISION, policyBits, policyFromFile, uniformPolicy } from '../src/train/policies.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHIPPED_POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');

export interface ExportBenchRow {
  label: string;
  size: Record<ExportOpset, ExportSize>;
  fpBytes: number;
  /** images per second */
  ort: { fp: number; qdq13: number; qdq21: number };
  tfjs: { fp: number; fakeQuant: number };
  /** the op types of onnxruntime's optimized graph of the opset-13 QDQ file, with counts */
  ortOps: string;
}

interface Case {
  label: string;
  source: ModelSource;
  perChannel?: boolean;
  /** the policy of the built model */
  policy: (model: QuantModel) => BitsPolicy;
  bits: number[];
}

/** Images per second of `run` (one batch of `n`), timed for at least `seconds` after a warm-up. */
async function throughput(n: number, run: () => Promise<void> | void, seconds = 2): Promise<number> {
  await run();
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000 || count < 3) {
    await run();
    count++;
  }
  return (count * n * 1000) / (performance.now() - start);
}

export async function benchExport(batch = 256): Promise<ExportBenchRow[]> {
  const ort = await import('onnxruntime-node');
  await initBackend('wasm', { threads: 1 });
  const mnist = loadMnistPackage(0);
  const images = mnist.test.images.subarray(0, batch * 784);
  const x = tf.tensor4d(images, [batch, 28, 28, 1]);
  const shipped = readPolicy(SHIPPED_POLICY);
  const atShipped = (model: QuantModel) => policyFromFile(model, shipped, SHIPPED_POLICY);
  const cases: Case[] = [
    { label: 'mnist-cnn, shipped W3A4/CR12.2 policy', source: 'mnist-cnn', policy: atShipped, bits: policyBits(shipped) },
    { label: 'mnist-cnn, the same policy, weight steps per channel', source: 'mnist-cnn', perChannel: true, policy: atShipped, bits: policyBits(shipped) },
    { label: 'mobilenet-mini (depthwise), uniform W4A4', source: 'mobilenet-mini', policy: (m) => uniformPolicy(m, 4), bits: [4] },
    { label: 'residual.onnx (imported from PyTorch), uniform W4A4', source: readOnnxModel(join(REPO_ROOT, 'test/fixtures/onnx/residual.onnx')), policy: (m) => uniformPolicy(m, 4), bits: [4] },
  ];
  const rows: ExportBenchRow[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'mpq-bench-export-'));
  try {
    for (const c of cases) {
      const model = createModel(c.source, { bits: c.bits, seed: 1, perChannelWeights: c.perChannel });
      const policy = c.policy(model);
      // LSQ's step sizes start from the first batch they see in training
      tf.tidy(() => { model.forward(tf.tensor4d(mnist.train.images.subarray(0, 64 * 784), [64, 28, 28, 1]), policy, true); });
      const onnx = async (p: BitsPolicy | undefined, opset: ExportOpset) => (await exportModel(model, { format: 'onnx', opset, ...(p && { policy: p }) })).files[0][1] as Uint8Array;
      const files = { fp: await onnx(undefined, 13), qdq13: await onnx(policy, 13), qdq21: await onnx(policy, 21) };
      const input = model.graph.nodes[0];
      const feeds = { [input.name]: new ort.Tensor('float32', Float32Array.from(images), [batch, 1, 28, 28]) };
      const ortRate = async (bytes: Uint8Array) => {
        const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
        try {
          return await throughput(batch, async () => { await session.run(feeds); });
        } finally {
          await session.release();
        }
      };
      // what onnxruntime runs: its optimized graph (integer kernels would show as QLinearConv, ConvInteger, …)
      const optimized = join(scratch, 'optimized.onnx');
      await (await ort.InferenceSession.create(files.qdq13, { intraOpNumThreads: 1, optimizedModelFilePath: optimized, graphOptimizationLevel: 'extended' })).release();
      const census = new Map<string, number>();
      for (const node of readOnnxFile(optimized).graph.nodes) census.set(node.opType, (census.get(node.opType) ?? 0) + 1);
      const tfjsRate = (p: BitsPolicy) => throughput(batch, () => { tf.tidy(() => model.forward(x, p, false).dataSync()); });
      rows.push({
        label: c.label,
        size: { 13: exportSize(model, policy, files.qdq13.length), 21: exportSize(model, policy, files.qdq21.length) },
        fpBytes: files.fp.length,
        ort: { fp: await ortRate(files.fp), qdq13: await ortRate(files.qdq13), qdq21: await ortRate(files.qdq21) },
        tfjs: { fp: await tfjsRate(FULL_PRECISION), fakeQuant: await tfjsRate(policy) },
        ortOps: [...census].map(([op, count]) => `${op} ${count}`).join(', '),
      });
      disposeModel(model);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    x.dispose();
  }
  return rows;
}

export function formatExport(rows: ExportBenchRow[], batch = 256): string {
  const n = (v: number) => Math.round(v).toLocaleString('en');
  return [
    `mpq export-model (ONNX; onnxruntime and tfjs-wasm each on one thread, a batch of ${batch} digits):`,
    ...rows.flatMap((r) => [
      `  ${r.label}: opset 13 ${n(r.size[13].fileBytes)} B, opset 21 ${n(r.size[21].fileBytes)} B, full-precision ONNX ${n(r.fpBytes)} B; `
        + `FP32 weights ${n(r.size[13].fp32WeightBytes)} B / CR ${r.size[13].compressionRatio.toFixed(2)} = ${n(r.size[13].targetBytes)} B `
        + `(opset 13 ${(r.size[13].fileBytes / r.size[13].targetBytes).toFixed(2)}x that, opset 21 ${(r.size[21].fileBytes / r.size[21].targetBytes).toFixed(2)}x)`,
      `    onnxruntime QDQ opset 13 ${n(r.ort.qdq13)} img/s, opset 21 ${n(r.ort.qdq21)} img/s, FP ${n(r.ort.fp)} img/s; `
        + `tfjs-wasm fake-quantized ${n(r.tfjs.fakeQuant)} img/s, FP ${n(r.tfjs.fp)} img/s; `
        + `onnxruntime QDQ / tfjs-wasm fake-quantized ${(r.ort.qdq13 / r.tfjs.fakeQuant).toFixed(1)}x (opset 13), FP ${(r.ort.fp / r.tfjs.fp).toFixed(1)}x`,
      `    onnxruntime's optimized QDQ graph: ${r.ortOps}`,
    ]),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const at = process.argv.indexOf('--batch');
  const batch = at >= 0 ? Number(process.argv[at + 1]) : 256;
  console.log(formatExport(await benchExport(batch), batch));
}
