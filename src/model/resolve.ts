/**
 * What `--model` names: a zoo model, an ONNX file, a tfjs LayersModel `model.json` or (for the
 * search only) a layer-table JSON file; or, where a checkpoint is given instead, the model the
 * checkpoint records. The parsers load only for the kind of file given: they cost start-up time.
 */
import { existsSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { FieldError, type FieldNamer } from '../util/errors.js';
import { readJsonFile } from '../util/json-file.js';
import type { GraphModel } from './graph.js';
import type { LayerSelection } from './graph-table.js';
import { isTfjsModelJson, type LayerTable } from './layer.js';
import { modelName } from './names.js';
export { modelName };
import { isZooModel, TRAINABLE_ZOO_MODELS, ZOO_MODEL_NAMES, zooGraph, zooInput } from './zoo.js';

/** A model the training engine builds: a trainable zoo model by name, or a graph (imported, with its weights). */
export type ModelSource = string | GraphModel;

/** The name a model source goes by (checkpoints, policies and indicators record it). */
export function sourceName(source: ModelSource): string {
  return typeof source === 'string' ? source : source.graph.name;
}

const isOnnxPath = (path: string): boolean => extname(path).toLowerCase() === '.onnx';

function missing(spec: string): FieldError {
  return new FieldError((n) => `${n('model')}: unknown model '${spec}': neither a zoo model (${ZOO_MODEL_NAMES.join(', ')}) nor a model file (.onnx, tfjs model.json, layer-table .json)`);
}

/** `--model` names a zoo model or an existing file (checked before anything is read for it). */
export function assertModelExists(spec: string): void {
  if (!isZooModel(spec) && !existsSync(spec)) throw missing(spec);
}

/**
 * How to get indicators for a model that has none cached: pretrain them where mpq can train the
 * model (a zoo model with a dataset here, an ONNX or tfjs file: the `mpq` commands that do it),
 * else bring LIMPQ's or an objective table (the search's fields, as the namer names them).
 */
export function indicatorsHowTo(spec: string): (n: FieldNamer) => string {
  const elsewhere = (n: FieldNamer) => `pass ${n('indicators')} FILE (JSON in LIMPQ's schema, or LIMPQ's .pkl) or ${n('objectiveTable')} FILE`;
  const out = `--out indicators/${modelName(spec)}.json`;
  if (isZooModel(spec)) {
    if (!TRAINABLE_ZOO_MODELS.includes(spec)) return (n) => `mpq has no dataset to pretrain ${spec} on (it trains ${TRAINABLE_ZOO_MODELS.join(', ')}); ${elsewhere(n)}`;
    // colour models train on CIFAR-10 (its binary batches), the digit models on the bundled MNIST
    const data = zooInput(spec)[0] === 3 ? ' --data CIFAR10_DIR' : '';
    return (n) => `pretrain them: \`mpq train --model ${spec}${data} --epochs 24 --checkpoint ckpt/fp\`, then \`mpq pretrain --from ckpt/fp --bits 6 5 4 3 2 --epochs 2${data} ${out}\`; or ${elsewhere(n)}`;
  }
  const trainable = isOnnxPath(spec) || (extname(spec).toLowerCase() === '.json' && isTfjsModelJson(readJsonFile(spec, 'model')));
  if (!trainable) return elsewhere; // a layer table has no layers to run
  return (n) => `pretrain them on the file's own weights: \`mpq pretrain --model ${spec} --bits 6 5 4 3 2 --epochs 2 ${out}\`; or ${elsewhere(n)}`;
}

/**
 * The graph of a model file or zoo name, with the file's weights when `weights` (the search needs
 * the structure only, and a tfjs model's shards are then not read).
 */
export async function loadGraphModel(spec: string, opts: { weights?: boolean } = {}): Promise<GraphModel> {
  if (isZooModel(spec)) return { graph: zooGraph(spec) };
  if (!existsSync(spec)) throw missing(spec);
  if (isOnnxPath(spec)) return (await import('./onnx-import.js')).readOnnxModel(spec, opts);
  const data = readJsonFile(spec, 'model');
  if (!isTfjsModelJson(data)) {
    throw new FieldError((n) => `${n('model')} ${spec}: a layer table can be searched but not trained (it has no layers to run); give an ONNX file or a tfjs model.json`);
  }
  return (await import('./tfjs-import.js')).tfjsGraph(data, spec, opts.weights ? { weightsDir: dirname(spec) } : {});
}

/** `--model` for the training engine: a trainable zoo name as it is, a file as its graph with weights. */
export async function trainingModel(spec: string): Promise<ModelSource> {
  if (isZooModel(spec)) {
    if (!TRAINABLE_ZOO_MODELS.includes(spec)) {
      throw new FieldError((n) => `${n('model')}: '${spec}' cannot be trained here (no dataset for it); trainable models: ${TRAINABLE_ZOO_MODELS.join(', ')}, or an ONNX / tfjs model file`);
    }
    return spec;
  }
  return loadGraphModel(spec, { weights: true });
}

/** `--model` for the search: a zoo model's table, a model file's (ONNX, tfjs) or a layer-table file. */
export async function searchLayerTable(spec: string, selection: LayerSelection, opts: { macs?: 'exact' | 'limpq' } = {}): Promise<LayerTable> {
  const { graphLayerTable } = await import('./graph-table.js');
  if (isZooModel(spec)) return graphLayerTable(zooGraph(spec), spec, selection, opts);
  if (!existsSync(spec)) throw missing(spec);
  if (isOnnxPath(spec)) return graphLayerTable((await import('./onnx-import.js')).readOnnxModel(spec, { weights: false }).graph, spec, selection, opts);
  // a JSON file: a tfjs model (it has `modelTopology`) or a layer table
  const data = readJsonFile(spec, 'model');
  if (isTfjsModelJson(data)) return graphLayerTable((await import('./tfjs-import.js')).tfjsGraph(data, spec).graph, spec, selection, opts);
  if (selection.fixed || selection.searchable) {
    throw new FieldError((n) => `${n('layers.fixed')} / ${n('layers.searchable')}: ${spec} is a layer table, which says itself which layers are fixed`);
  }
  if (opts.macs === 'limpq') throw new FieldError((n) => `${n('macs')}: ${spec} is a layer table, which gives its own MACs`);
  return (await import('./table-file.js')).layerTableFrom(data, spec);
}

