import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compressionRatio, costs, layerBitops, layerSizeBits } from '../src/model/costs.js';

test('BitOps, size and compression ratio by hand; layers without bits count at `at`, full precision by default', () => {
  assert.equal(layerBitops(100, 4, 8), 3200);
  assert.equal(layerSizeBits(10, 4), 40);
  const layers = [{ macs: 100, params: 10, weightBits: 4, actBits: 8 }, { macs: 50, params: 20, weightBits: 2, actBits: 2 }];
  // 100·4·8 + 50·2·2 = 3400; 10·4 + 20·2 = 80 bits; 32·30 / 80 = 12
  assert.deepEqual(costs(layers), { bitops: 3400, sizeBits: 80, macs: 150, params: 30 });
  assert.equal(compressionRatio(costs(layers)), 12);
  // without bits: 32/32 (150·1024 BitOps, 30·32 bits: ratio 1), or the bits given
  const bare = layers.map(({ macs, params }) => ({ macs, params }));
  assert.deepEqual(costs(bare), { bitops: 153600, sizeBits: 960, macs: 150, params: 30 });
  assert.equal(compressionRatio(costs(bare)), 1);
  assert.equal(costs(bare, { weightBits: 3, actBits: 4 }).bitops, 150 * 12);
  assert.deepEqual(costs([]), { bitops: 0, sizeBits: 0, macs: 0, params: 0 });
});
