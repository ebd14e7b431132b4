import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allowedBits, matchIndicatorLayers, readIndicators, validateIndicators } from '../src/indicators/indicators.js';
import { UserError } from '../src/util/errors.js';
import { HAS_REFERENCE, REFERENCE_DIR, tempDir } from './support.js';

const dir = tempDir();
function writeJson(name: string, data: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
  return p;
}
const good = {
  weight: { 'module.a': { '4': 0.2, '3': 0.3, '2': 0.5 }, 'module.b': { '4': 0.1, '3': 0.05, '2': 0.4 } },
  act: { 'module.a': { '4': 0.5, '3': 0.6, '2': 0.9 }, 'module.b': { '4': 0.2, '3': 0.3, '2': 0.25 } },
  layer_name: ['module.a', 'module.b'],
  meta: { model: 'tiny', seed: 7 },
};

function rejects(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'));
}

test('reads the LIMPQ .pkl exactly as its JSON twin', { skip: HAS_REFERENCE ? false : 'no reference data' }, () => {
  const pkl = readIndicators(join(REFERENCE_DIR, 'importance_indicators_resnet50.pkl'));
  const json = readIndicators(join(REFERENCE_DIR, 'indicators.json'));
  assert.equal(pkl.layerNames.length, 52);
  assert.deepEqual(pkl.layerNames, json.layerNames);
  assert.deepEqual(pkl.weight, json.weight);
  assert.deepEqual(pkl.act, json.act);
  assert.match(pkl.sha256, /^[0-9a-f]{64}$/);
});

test('reads JSON with metadata; matches names across the DDP module. prefix', () => {
  const ind = readIndicators(writeJson('good.json', good));
  assert.deepEqual(ind.meta, { model: 'tiny', seed: 7 });
  assert.deepEqual(matchIndicatorLayers(ind, ['b', 'a'], 'tiny'), ['module.b', 'module.a']);
});

test('a name mismatch lists the names on both sides', () => {
  const ind = readIndicators(writeJson('good2.json', good));
  rejects(() => matchIndicatorLayers(ind, ['a', 'c'], 'tiny'), /no indicators for model layers c; indicator layers not in the model: module\.b/);
});

test('wired points: a candidate below its next higher candidate is left out, per layer and kind', () => {
  const ind = readIndicators(writeJson('good3.json', good));
  // weights of b: 3 bits (0.05) below 4 bits (0.1) -> 3 removed; 2 bits (0.4) above 3 bits -> kept
  const w = allowedBits(ind, 'weight', 'module.b', [2, 3, 4], ind.path);
  assert.deepEqual(w.allowed, [4, 2]);
  assert.deepEqual(w.removed, [{ layer: 'module.b', kind: 'weight', bits: 3, value: 0.05, higherBits: 4, higherValue: 0.1 }]);
  // acts of b: 2 bits (0.25) below 3 bits (0.3)
  assert.deepEqual(allowedBits(ind, 'act', 'module.b', [4, 3, 2], ind.path).allowed, [4, 3]);
  // a is monotone: nothing removed; the highest candidate is never removed
  assert.deepEqual(allowedBits(ind, 'weight', 'module.a', [4, 3, 2], ind.path).removed, []);
  // with candidates 4 and 2 only, 2 is compared with 4
  assert.deepEqual(allowedBits(ind, 'act', 'module.b', [4, 2], ind.path).allowed, [4, 2]);
});

test('bad indicator files give one line naming the file and field', () => {
  rejects(() => readIndicators(join(dir, 'absent.json')), /absent\.json: no such indicators file/);
  rejects(() => readIndicators(writeJson('trunc.json', JSON.stringify(good).slice(0, 40))), /trunc\.json: not valid JSON/);
  rejects(() => readIndicators(writeJson('arr.json', [])), /arr\.json: expected an object/);
  rejects(() => readIndicators(writeJson('noname.json', { ...good, layer_name: [] })), /layer_name: expected a non-empty list/);
  rejects(() => readIndicators(writeJson('dup.json', { ...good, layer_name: ['module.a', 'module.a'] })), /'module\.a' appears twice/);
  rejects(() => readIndicators(writeJson('miss.json', { ...good, act: { 'module.a': good.act['module.a'] } })), /act\['module\.b'\]: missing/);
  const nan = JSON.stringify(good).replace('"3":0.3', '"3":NaN');
  rejects(() => readIndicators(writeJson('nan.json', nan)), /nan\.json: not valid JSON/);
  // a pickle can carry NaN: the value check names it
  const withNaN = structuredClone(good);
  withNaN.act['module.a']['3'] = NaN;
  rejects(() => validateIndicators('x.pkl', withNaN), /x\.pkl: act\['module\.a'\]\['3'\]: expected a positive finite number, got NaN/);
  const neg = structuredClone(good);
  neg.weight['module.a']['3'] = -0.3;
  rejects(() => readIndicators(writeJson('neg.json', neg)), /weight\['module\.a'\]\['3'\]: expected a positive finite number, got -0\.3/);
  const str = structuredClone(good) as unknown as { act: Record<string, Record<string, unknown>> };
  str.act['module.b']['2'] = 'big';
  rejects(() => readIndicators(writeJson('str.json', str)), /act\['module\.b'\]\['2'\]: expected a positive finite number, got "big"/);
  const ind = readIndicators(writeJson('ok.json', good));
  rejects(() => allowedBits(ind, 'weight', 'module.a', [8, 4], ind.path), /weight\['module\.a'\] has no indicator for 8 bits/);
});

test('malformed and truncated pickles are one-line errors', () => {
  // protocol 2: PROTO 2, EMPTY_DICT, STOP -> {} ; cut before STOP -> truncated
  const emptyDict = Buffer.from([0x80, 0x02, 0x7d, 0x2e]);
  writeFileSync(join(dir, 'empty.pkl'), emptyDict);
  rejects(() => readIndicators(join(dir, 'empty.pkl')), /empty\.pkl: layer_name/);
  writeFileSync(join(dir, 'trunc.pkl'), emptyDict.subarray(0, 3));
  rejects(() => readIndicators(join(dir, 'trunc.pkl')), /trunc\.pkl: not a readable pickle/);
  writeFileSync(join(dir, 'junk.pkl'), Buffer.from('not a pickle at all'));
  rejects(() => readIndicators(join(dir, 'junk.pkl')), /junk\.pkl: not a readable pickle/);
});

test('messages: a pickle of a foreign class says so; a string where a number belongs is quoted', () => {
  // pickle.dumps(resnet.Model() with .layers = [1], protocol=2): an instance of a class, not LIMPQ's dict
  writeFileSync(join(dir, 'model.pkl'), Buffer.from('gAJjcmVzbmV0Ck1vZGVsCnEAKYFxAX1xAlgGAAAAbGF5ZXJzcQNdcQRLAWFzYi4=', 'base64'));
  rejects(() => readIndicators(join(dir, 'model.pkl')), /model\.pkl: the pickle holds a resnet\.Model object, not a dict with 'weight', 'act' and 'layer_name'/);
  const quoted = structuredClone(good) as unknown as { weight: Record<string, Record<string, unknown>> };
  quoted.weight['module.a']['3'] = '0.03';
  rejects(() => readIndicators(writeJson('quoted.json', quoted)), /weight\['module\.a'\]\['3'\]: expected a positive finite number, got "0\.03"$/);
  // a layer name with a line break still makes one line
  const broken = { ...good, layer_name: ['module.a', 'module.b\nx'] };
  rejects(() => readIndicators(writeJson('broken.json', broken)), /weight\['module\.b\\nx'\]: missing/);
});
