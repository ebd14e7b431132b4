import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLIP_LIMIT } from '../src/simulate/calibrate.js';
import { runCli, tempDir } from './support.js';

// A checkpoint trained here (600 digits, 2 epochs): KL calibration must not collapse it. Before
// KL's search kept within CLIP_LIMIT, its threshold for the image sat at the background level
// (0.425) and this model fell from 44.8% to 9.5% at W8A8.
test('KL calibration of a trained checkpoint: W8A8 within 1 point of FP, per layer and as the int8 tables quantize; no threshold clips more than the limit', (t) => {
  const dir = tempDir('mpq-kl-trained-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fp = join(dir, 'fp');
  const trained = runCli(['train', '--model', 'mnist-cnn', '--epochs', '2', '--limit', '600', '--batch-size', '32', '--seed', '0', '--checkpoint', fp, '--no-progress']);
  assert.equal(trained.status, 0, trained.stderr);

  // first conv quantized; unsigned inputs after ReLU, and every input signed (the int8 tables' choice)
  const r = runCli(['simulate', '--from', fp, '--grid', '--calib', 'kl', '--quant-type', 'layer', 'channel', '--weight-bits', '8', '--input-bits', '8',
    '--input-signed', 'off', 'on', '--merge-bn', 'off', '--exclude-first-conv', 'off', '--limit', '1000', '--num-sample', '20', '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /warning/);
  const result = JSON.parse(r.stdout);
  assert.ok(result.fp_top1 > 0.3, `the checkpoint learned something: FP top-1 ${result.fp_top1}`);
  assert.equal(result.rows.length, 4);
  for (const row of result.rows) {
    const label = `${row.quantType} ${row.inputSigned ? 'int8' : 'uint8'}`;
    assert.ok(row.top1 >= result.fp_top1 - 0.01, `${label}: KL top-1 ${row.top1} vs FP ${result.fp_top1}`);
    assert.deepEqual(Object.keys(row.clipped), ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc']);
    for (const [layer, share] of Object.entries(row.clipped) as Array<[string, number]>) {
      assert.ok(share >= 0 && share <= CLIP_LIMIT, `${label} ${layer}: clips ${share} of its calibration values`);
    }
    // the image's strokes reach 2.82 and its background is −0.42: the threshold covers the strokes
    assert.ok(row.thresholds.conv1 > 2.7, `${label}: conv1 threshold ${row.thresholds.conv1}`);
    assert.equal(row.warning, undefined);
  }
});
