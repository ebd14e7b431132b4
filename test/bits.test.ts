import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPolicy } from '../src/export/policy-file.js';
import { layerTableFrom } from '../src/model/table-file.js';
import { parseConfigList } from '../src/train/config-list.js';
import { bitsProblem, checkBitsList, FULL_PRECISION_BITS, SUPPORTED_BITS } from '../src/quant/bits.js';
import { planQuantization } from '../src/train/quantization-plan.js';
import { validateSetting } from '../src/simulate/simulate.js';
import { runCli, tempDir, writeTinySearchInputs } from './support.js';

test('bitsProblem: whole widths in the range pass; others are named, with 32 only where full precision is allowed', () => {
  for (const bits of [2, 3, 8, 16]) assert.equal(bitsProblem(bits), undefined, `${bits}`);
  assert.equal(bitsProblem(1), '1 is not a bit-width in 2..16');
  assert.equal(bitsProblem(17), '17 is not a bit-width in 2..16');
  assert.equal(bitsProblem(2.5), '2.5 is not a bit-width in 2..16');
  assert.equal(bitsProblem(FULL_PRECISION_BITS), '32 is not a bit-width in 2..16');
  assert.equal(bitsProblem(FULL_PRECISION_BITS, SUPPORTED_BITS, { fullPrecision: true }), undefined);
  assert.equal(bitsProblem(31, SUPPORTED_BITS, { fullPrecision: true }), '31 is not a bit-width in 2..16 (or 32: full precision)');
  assert.equal(bitsProblem(NaN, SUPPORTED_BITS, { shown: "'x'" }), "'x' is not a bit-width in 2..16");
  assert.throws(() => checkBitsList([4, 9], { min: 1, max: 8 }, 'NUQ'), /^RangeError: NUQ takes 1\.\.8 bits, got 9$/);
  assert.throws(() => checkBitsList([4], { min: 8, max: 8 }, 'naive'), /^RangeError: naive takes 8 bits only, got 4$/);
});

/** A policy file for the tiny search model with one searchable layer at `bits`. */
function policyWith(dir: string, bits: number): string {
  const path = join(dir, `policy-${bits}.json`);
  writeFileSync(path, JSON.stringify({
    format: 'mpq-policy', version: 1, model: 'mnist-cnn', bits: [bits],
    layers: [{ name: 'conv2', weightBits: bits, actBits: 4, macs: 1, params: 1 }], fixed: [],
  }));
  return path;
}

test('one supported range everywhere: a width search refuses, every other entry refuses too; 2 and 16 pass them all', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { model, indicators } = writeTinySearchInputs(dir);
  const search = (bits: number) => runCli(['search', '--model', model, '--indicators', indicators, '--bits', String(bits), '4']);
  const pretrain = (bits: number) => runCli(['pretrain', '--model', 'mnist-cnn', '--from', dir, '--bits', String(bits), '--epochs', '1']);
  const entries: Array<[string, (bits: number) => void]> = [
    ['search --bits', (bits) => {
      const r = search(bits);
      if (/is not a bit-width/.test(r.stderr)) throw new Error(r.stderr.trim());
    }],
    ['pretrain --bits', (bits) => {
      const r = pretrain(bits);
      if (/is not a bit-width/.test(r.stderr)) throw new Error(r.stderr.trim());
    }],
    ['policy file', (bits) => readPolicy(policyWith(dir, bits))],
    ['layer table', (bits) => layerTableFrom({ layers: [{ name: 'a', params: 1, macs: 1 }], fixed: [{ name: 'b', params: 1, macs: 1, weight_bits: bits, act_bits: 8 }] }, 't.json')],
    ['config list', (bits) => parseConfigList([{ quant_types: ['weight'], quant_bits: bits, op_types: ['Conv2d'] }], 'c.json', 'lsq')],
    ['finetune/eval --weight-bits', (bits) => planQuantization({ quantizer: { name: 'lsq' }, weightBits: bits })],
    ['simulate --weight-bits', (bits) => validateSetting({ quantType: 'layer', weightBits: bits, inputBits: 8, inputSigned: false, calib: 'none', mergeBn: false, excludeFirstConv: true })],
  ];
  for (const [where, check] of entries) {
    for (const bits of [SUPPORTED_BITS.min, SUPPORTED_BITS.max]) assert.doesNotThrow(() => check(bits), `${where} takes ${bits}`);
    for (const bits of [SUPPORTED_BITS.min - 1, SUPPORTED_BITS.max + 1]) {
      assert.throws(() => check(bits), (err: Error) => /\b2\.\.16\b/.test(err.message) && !err.message.includes('\n'), `${where} refuses ${bits}`);
    }
  }
  // and through the CLI as a one-line usage error
  const r = search(1);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), "mpq: --bits: '1' is not a bit-width in 2..16");
});
