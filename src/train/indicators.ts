import { LsqQuantizer, type Quantizer } from '../quant/index.js';
import type { IndicatorsFile } from '../indicators/indicators.js';
import type { QuantModel } from './models.js';

/**
 * The learned LSQ step sizes of the searchable layers, as LIMPQ's importance_extractor.py reads
 * them off a pretraining checkpoint (`<layer>.quan_w_fn.s`, `<layer>.quan_a_fn.s`). Step sizes
 * must be per-tensor scalars.
 */
export function extractIndicators(model: QuantModel, meta: Record<string, unknown>): IndicatorsFile {
  const weight: IndicatorsFile['weight'] = {};
  const act: IndicatorsFile['act'] = {};
  for (const name of model.searchableLayerNames) {
    const layer = model.layers.find((l) => l.name === name)!;
    weight[name] = stepSizes(layer.weightQuantizer, name);
    act[name] = stepSizes(layer.inputQuantizer, name);
  }
  return { weight, act, layer_name: [...model.searchableLayerNames], meta };
}

function stepSizes(q: Quantizer, layer: string): Record<string, number> {
  if (!(q instanceof LsqQuantizer)) throw new Error(`${layer}: indicators are LSQ step sizes, this layer uses '${q.kind}'`);
  const out: Record<string, number> = {};
  for (const bits of q.bitsList) {
    const s = q.step(bits);
    if (s.size !== 1) throw new Error(`${layer}: per-channel step sizes cannot be indicators`);
    if (!q.isInitialised(bits)) throw new Error(`${layer}: step size for ${bits} bits was never trained`);
    out[String(bits)] = s.dataSync()[0];
  }
  return out;
}
