import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readIndicators } from '../src/indicators/indicators.js';
import { readLayerTable } from '../src/model/table-file.js';
import { zooGraph, zooLayerTable } from '../src/model/zoo.js';
import { graphLayerTable } from '../src/model/graph-table.js';
import type { Layer } from '../src/model/layer.js';
import { formulate, type SearchOptions } from '../src/search/problem.js';
import { runSearch } from '../src/search/search.js';
import { SOLVERS } from '../src/search/solvers/index.js';
import { HAS_REFERENCE, REFERENCE_DIR, runCli } from './support.js';

const skip = HAS_REFERENCE ? false : `no LIMPQ reference data at ${REFERENCE_DIR}`;
const W3A4_CR12_2: SearchOptions = { bits: [6, 5, 4, 3, 2], alpha: 2, bops: true, weightBits: 3, actBits: 4, cr: 12.2 };

test('LIMPQ .pkl + reference arithmetic reproduce the published W3A4/CR12.2 policy exactly', { skip }, async () => {
  const expected = JSON.parse(readFileSync(join(REFERENCE_DIR, 'expected-w3a4-cr12.2.json'), 'utf8'));
  const table = readLayerTable(join(REFERENCE_DIR, 'layers-reference-arithmetic.json'));
  for (const file of ['importance_indicators_resnet50.pkl', 'indicators.json']) {
    const ind = readIndicators(join(REFERENCE_DIR, file));
    const f = formulate(table, ind, W3A4_CR12_2);
    for (const solver of Object.values(SOLVERS)) {
      if (file === 'indicators.json' && solver.name !== 'exact') continue; // same data; the MIP solvers are slow
      const r = await runSearch(table, f, solver, { weightBits: 3, actBits: 4 });
      assert.equal(r.status, 'optimal', `${file} ${solver.name}`);
      assert.deepEqual(r.layers.map((l) => l.weightBits), expected.weight_bits, `${file} ${solver.name}: weight bits`);
      assert.deepEqual(r.layers.map((l) => l.actBits), expected.act_bits, `${file} ${solver.name}: act bits`);
      assert.ok(Math.abs(r.objective! - expected.objective) < 1e-12, `${file} ${solver.name}: objective ${r.objective}`);
      assert.ok(Math.abs(r.compressionRatio! - 12.2) < 0.01 && r.compressionRatio! >= 12.2, `compression ratio ${r.compressionRatio}`);
    }
  }
});

test('zoo resnet50 (true MAC counts) gives the optimum 4.630866212770343', { skip }, async () => {
  const ind = readIndicators(join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'));
  const table = zooLayerTable('resnet50');
  const r = await runSearch(table, formulate(table, ind, W3A4_CR12_2), SOLVERS.exact, { weightBits: 3, actBits: 4 });
  assert.equal(r.status, 'optimal');
  assert.ok(Math.abs(r.objective! - 4.630866212770343) < 1e-12, String(r.objective));
  // the two wired points of the published indicators are left out
  assert.deepEqual(r.removed.map((w) => `${w.layer}:${w.kind}:${w.bits}`).sort(), [
    'module.layer4.0.downsample.0:weight:5', 'module.layer4.2.conv3:weight:5',
  ]);
});

test('--limpq-macs: the zoo resnet50 counted as LIMPQ\'s script counts is its reference table, and the .pkl alone reproduces the published policy', { skip }, () => {
  const reference = readLayerTable(join(REFERENCE_DIR, 'layers-reference-arithmetic.json'));
  const table = graphLayerTable(zooGraph('resnet50'), 'resnet50', {}, { macs: 'limpq' });
  const rows = (layers: Layer[]) => layers.map((l) => [l.name.replace(/^module\./, ''), l.params, l.macs]);
  assert.deepEqual(rows(table.layers), rows(reference.layers));
  assert.deepEqual(rows(table.fixed), rows(reference.fixed));
  assert.notDeepEqual(rows(table.layers), rows(zooLayerTable('resnet50').layers), 'the stride-2 layers differ from the true count');
  const expected = JSON.parse(readFileSync(join(REFERENCE_DIR, 'expected-w3a4-cr12.2.json'), 'utf8'));
  const r = runCli(['search', '--model', 'resnet50', '--limpq-macs', '--indicators', join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const found = JSON.parse(r.stdout);
  assert.deepEqual([found.weight_bits, found.act_bits], [expected.weight_bits, expected.act_bits]);
  assert.ok(Math.abs(found.objective - expected.objective) < 1e-12, String(found.objective));
});
