/**
 * int8 deployment calibration files from an FP checkpoint: the ncnn table and the TensorRT
 * entropy-calibration cache. Both describe the FP network with batch norm merged into the
 * convolutions (ncnn requires it), weights per output channel, every input as signed int8 with a
 * calibrated threshold (KL with 128 target bins by default, as ncnn2table and TensorRT; or naive).
 */
import { writeTensorRtCache, type NcnnLayerCalibration } from '../export/deploy-tables.js';
import type { Calibration, CalibrationMode } from './calibrate.js';
import { disposeModel } from '../train/models.js';
import { simulatedModel, type SimulateContext } from './simulate.js';

/** Every layer's merged weights and calibrated int8 input threshold, and what the thresholds clip. */
export function int8Calibration(ctx: SimulateContext, calib: CalibrationMode): { layers: NcnnLayerCalibration[]; calibration: Calibration } {
  const { model, calibration } = simulatedModel(ctx, {
    quantType: 'channel', weightBits: 8, inputBits: 8, inputSigned: true, calib, mergeBn: true, excludeFirstConv: false,
  });
  try {
    const layers = model.layers.map((layer) => ({
      name: layer.name,
      weights: Float32Array.from(layer.weight.dataSync() as Float32Array),
      layout: { shape: [...layer.weight.shape] },
      inputThreshold: calibration!.thresholds.get(layer.name)!,
    }));
    return { layers, calibration: calibration! };
  } finally {
    disposeModel(model);
  }
}

/** The TensorRT cache: one entry per layer input, the tensor named after the layer it feeds. */
export function tensorRtCache(layers: readonly NcnnLayerCalibration[], version: number): string {
  return writeTensorRtCache(layers.map((l) => ({ tensor: l.name, threshold: l.inputThreshold })), { version });
}
