import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { REPO_ROOT, runCli } from './support.js';

/** The package entry as a user gets it: package.json `main`, built. */
const main = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).main as string;
const mpq = (await import(pathToFileURL(join(REPO_ROOT, main)).href)) as typeof import('../src/index.js');

test('package.json main names the built entry, and every name it exports is defined', () => {
  assert.equal(main, 'dist/src/index.js');
  for (const name of ['formulate', 'solverByName', 'runSearch', 'zooLayerTable', 'readIndicators', 'readPolicy', 'LsqQuantizer', 'UniformQuantizer', 'readPacked', 'finetuneAtPolicy', 'costs']) {
    assert.ok(name in mpq, name);
  }
  for (const [name, value] of Object.entries(mpq)) assert.notEqual(value, undefined, name);
});

test('a search through the entry finds the policy `mpq search` finds', async () => {
  const table = mpq.zooLayerTable('mnist-cnn');
  const indicators = mpq.readIndicators(join(REPO_ROOT, 'indicators/mnist-cnn.json'));
  const f = mpq.formulate(table, indicators, { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 });
  const result = await mpq.runSearch(table, f, mpq.solverByName('exact'), { weightBits: 3, actBits: 4 });
  const cli = runCli(['search', '--bits', '6', '5', '4', '3', '2', '--wb', '3', '--ab', '4', '--cr', '12.2', '--json']);
  assert.equal(cli.status, 0, cli.stderr);
  const expected = JSON.parse(cli.stdout);
  assert.equal(result.status, 'optimal');
  assert.equal(result.objective, expected.objective);
  assert.deepEqual(result.layers.map((l) => l.weightBits), expected.weight_bits);
  assert.equal(result.compressionRatio, expected.compression_ratio);
});

test('a quantizer from the entry packs its integer codes into the container', async () => {
  assert.equal(await mpq.initBackend('cpu'), 'cpu');
  const q = new mpq.LsqQuantizer({ bitsList: [4], signedness: 'signed', init: 'weight' });
  q.activeBits = 4;
  const x = tf.tensor2d([[0.3, -0.2], [0.05, 0.9]]);
  q.quantize(x, true);
  const [layer] = mpq.readPacked(mpq.writePacked([{ name: 'w', shape: [2, 2], ...q.integerForm(x)! }])).layers;
  assert.deepEqual(mpq.dequantize(layer!), q.quantize(x, false).dataSync());
});
