import { Document, isScalar, type Pair, type YAMLMap, type YAMLSeq } from 'yaml';
import type { Policy, PolicyLayer } from './policy.js';
import { modelFacts, type ModelFacts } from './model-facts.js';

import { EXPORT_FORMATS, type ExportFormat } from './format-names.js';

export { EXPORT_FORMATS, type ExportFormat };

export interface ExportOptions {
  /** run name: LIMPQ's experiment `name`, HAWQ's quant scheme (`bit_config_<arch>_<name>`); default `mpq` */
  name?: string;
  /** limpq-yaml, for a model LIMPQ's trainer does not build: what is known of it (default: read from the policy's inputs) */
  facts?: ModelFacts;
}

/** Render a policy as another tool's configuration text (ends with a newline). */
export function exportPolicy(p: Policy, format: ExportFormat, opts: ExportOptions = {}): string {
  const name = opts.name ?? 'mpq';
  switch (format) {
    case 'limpq-yaml':
      return limpqFinetuneYaml(p, name, LIMPQ_ARCHS.includes(p.model) ? undefined : opts.facts ?? modelFacts(p));
    case 'nni':
      return `${JSON.stringify(nniConfigList(p), null, 2)}\n`;
    case 'hawq':
      return `${JSON.stringify(hawqBitConfig(p, name), null, 2)}\n`;
  }
}

// ---------------------------------------------------------------------------------------------
// LIMPQ fine-tune YAML: quantization_training/finetune_resnet50_w3a4_12.2compression_ratio.yaml of
// github.com/1hunters/LIMPQ, key for key and in its order. Its trainer (util/config.py) merges this
// file over that template, and quan/utils.py find_modules_to_quantize walks model.named_modules():
// each Conv2d/Linear not named in quan.excepts takes the next entry of weight_bits/act_bits (it
// asserts the counts match), so the lists are positional and the layer order is the policy's.
// ---------------------------------------------------------------------------------------------

/** The ImageNet models LIMPQ's fine-tune trainer builds (model/model.py create_model); its template is theirs. */
const LIMPQ_ARCHS = ['resnet18', 'resnet50', 'mobilenetv1'];

/** Written where mpq does not know a value of a model outside LIMPQ's: null, and a comment saying so. */
const UNKNOWN = ' unknown to mpq: set it';

/**
 * `facts`: for a model outside LIMPQ's (MNIST, CIFAR-10, imported), the dataset, classes and
 * epochs mpq knows of it in place of the ImageNet template's, and the rest marked.
 */
function limpqFinetuneYaml(p: Policy, name: string, facts?: ModelFacts): string {
  const excepts = Object.fromEntries(
    p.fixed.map((layer, index) => [
      layer.name,
      {
        // The template marks the stem's input (the normalised image, signed) as not all-positive;
        // mpq's layer tables list the stem first among the fixed layers.
        act: index === 0 ? { bit: layer.actBits, all_positive: false } : { bit: layer.actBits },
        weight: { bit: layer.weightBits },
      },
    ]),
  );
  // quan.act/weight.bit only reach the LsqQuan constructor, which ignores them (per-layer bits come
  // from the lists); the template sets the lowest candidate, and so do we.
  const lowestBits = Math.min(...p.bits);
  const config = {
    name,
    weight_bits: p.layers.map((l) => l.weightBits),
    act_bits: p.layers.map((l) => l.actBits),
    gpu: 'a100_40g',
    output_dir: 'out',
    training_device: 'gpu',
    dataloader: {
      dataset: facts ? facts.dataset ?? null : 'imagenet',
      num_classes: facts ? facts.numClasses ?? null : 1000,
      path: `/path/to/${facts ? facts.dataset ?? 'dataset' : 'imagenet'}`,
      batch_size: 128,
      workers: 8,
      deterministic: true,
      serialized: false,
      val_split: 0.02,
    },
    resume: { path: null, lean: false },
    log: { num_best_scores: 3, print_freq: 20 },
    arch: p.model,
    freeze_weights: false,
    pre_trained: true,
    quan: {
      act: { mode: 'lsq', bit: lowestBits, per_channel: false, symmetric: false, all_positive: true },
      weight: { mode: 'lsq', bit: lowestBits, per_channel: false, symmetric: false, all_positive: false },
      excepts,
    },
    eval: false,
    fp_model: false,
    epochs: facts ? facts.epochs ?? null : 90,
    smoothing: 0.1,
    opt: 'sgd',
    lr: 0.04,
    momentum: 0.9,
    weight_decay: 0.000025,
    sched: 'cosine',
    min_lr: 0.00001,
    decay_rate: 0.1,
    warmup_epochs: 5,
    warmup_lr: 0.00001,
    decay_epochs: 30,
    cooldown_epochs: 5,
    val_cycle: 25,
  };

  // YAML 1.1 as PyYAML reads it: strings such as `on`, `no` or `y` get quoted instead of turning into booleans
  const doc = new Document(config, { version: '1.1' });
  doc.commentBefore = [
    ` LIMPQ fine-tune config for ${p.model}, exported by mpq from a searched policy.`,
    ' Run: cd quantization_training && python -m torch.distributed.launch --nproc_per_node=N main.py THIS.yaml',
    ' Set dataloader.path (and batch_size) for your machine.',
    ...(facts ? [
      ` ${p.model} is not a model LIMPQ's trainer builds (${LIMPQ_ARCHS.join(', ')} on imagenet): add it to`,
      ' model/model.py create_model, and its dataset to util/data_loader.py if LIMPQ lacks it (it reads imagenet, cifar10).',
      ` dataset, num_classes and epochs are what mpq knows${facts.sources.length ? ` (from ${facts.sources.join(', ')})` : ''}; null marks what it does not.`,
      ' The optimiser settings (lr, schedule, warm-up) are LIMPQ\'s ImageNet recipe: scale them to your run.',
    ] : []),
  ].join('\n');
  if (facts) {
    const loader = doc.getIn(['dataloader']) as YAMLMap;
    if (facts.dataset === undefined) mapKey(loader, 'dataset').commentBefore = UNKNOWN;
    if (facts.numClasses === undefined) mapKey(loader, 'num_classes').commentBefore = UNKNOWN;
    mapKey(doc.contents as YAMLMap, 'epochs').commentBefore = facts.epochs === undefined
      ? `${UNKNOWN} (mpq knows no full-precision training of ${p.model})`
      : ' as long as the full-precision training, as LIMPQ fine-tunes (90 epochs on ImageNet)';
  }
  // [6, 3, 4, ...] on one line, as LIMPQ writes them
  for (const key of ['weight_bits', 'act_bits']) (doc.get(key, true) as YAMLSeq).flow = true;
  mapKey(doc.contents as YAMLMap, 'weight_bits').commentBefore = [
    ' Positional: entry i is the i-th Conv2d/Linear of model.named_modules() outside quan.excepts:',
    ...p.layers.map((l, i) => `   ${String(i).padStart(3)}  ${l.name}  W${l.weightBits}A${l.actBits}`),
  ].join('\n');
  mapKey(doc.getIn(['quan']) as YAMLMap, 'excepts').commentBefore = [
    ' Fixed layers, with the policy\'s bits. LIMPQ\'s trainer quantizes excepted layers at W8/A32',
    ' (Conv2d: input left in float) or W8/A8 (Linear) whatever bit says here.',
  ].join('\n');
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** The key node of `key` in a map built from a plain object (keys are scalars there). */
function mapKey(map: YAMLMap, key: string): { commentBefore?: string | null } {
  const pair = map.items.find((item: Pair) => isScalar(item.key) && item.key.value === key);
  if (!pair || !isScalar(pair.key)) throw new Error(`no key '${key}' in the YAML map`);
  return pair.key;
}

// ---------------------------------------------------------------------------------------------
// NNI v2 quantization config_list (QAT_Quantizer, LsqQuantizer, ...): the schema in NNI's
// QAT_Quantizer.validate_config takes quant_types from {weight, input, output}, quant_bits as an
// int or {weight, input, output} each in 1..31, op_names / op_types to pick modules, and
// `exclude: true` to leave them alone. One entry per layer, fixed layers included.
// ---------------------------------------------------------------------------------------------

/** Bits at or above this are float in practice (LIMPQ runs its excepted convs' inputs at "32"). */
const FLOAT_BITS = 32;

type NniQuantType = 'weight' | 'input';
type NniConfigEntry =
  | { quant_types: NniQuantType[]; quant_bits: Partial<Record<NniQuantType, number>>; op_names: string[] }
  | { exclude: true; op_names: string[] };

function nniConfigList(p: Policy): NniConfigEntry[] {
  return [...p.layers, ...p.fixed].map((layer) => {
    const bits: Partial<Record<NniQuantType, number>> = {};
    if (layer.weightBits < FLOAT_BITS) bits.weight = layer.weightBits;
    if (layer.actBits < FLOAT_BITS) bits.input = layer.actBits;
    const quantTypes = Object.keys(bits) as NniQuantType[];
    // NNI rejects 32-bit quant_bits; a layer with nothing left to quantize is excluded instead
    if (quantTypes.length === 0) return { exclude: true, op_names: [layer.name] };
    return { quant_types: quantTypes, quant_bits: bits, op_names: [layer.name] };
  });
}

// ---------------------------------------------------------------------------------------------
// HAWQ-V3 bit_config (github.com/Zhen-Dong/HAWQ, bit_config.py): bit_config_dict maps
// "bit_config_<arch>_<scheme>" to {module name: bits}; quant_train.py sets `activation_bit` on
// QuantAct modules and `weight_bit` on the others. For a torchvision-named ResNet, names are those
// of HAWQ's quantized ResNets (utils/models/q_resnet.py):
//   conv1                  weight quant_init_block_convbn (basic blocks) / quant_init_convbn
//                          (bottlenecks); input activation quant_input
//   layerS.B.convK         weight stageS.unit(B+1).quant_convbnK; input activation
//                          stageS.unit(B+1).quant_act (K=1), .quant_act1 (K=2), .quant_act2 (K=3)
//   layerS.B.downsample.0  weight stageS.unit(B+1).quant_identity_convbn; input activation
//                          stageS.unit(B+1).quant_act, shared with conv1: the larger bits win
//   fc                     weight quant_output; input activation quant_act_output
// Residual accumulators (quant_act_int32, after the stem and per unit) get 16 bits, as in every
// config HAWQ ships. Other models have no HAWQ module tree to map to: the weight entry keeps the
// layer's name (as HAWQ's MobileNetV2 configs do for convs) and its input activation is
// `<name>.quant_act`; such a model needs its own HAWQ quantized module tree named to match.
// ---------------------------------------------------------------------------------------------

const TORCHVISION_RESNET_LAYER = /^(?:conv1|fc|layer(\d+)\.(\d+)\.(?:conv([123])|downsample\.0))$/;
const HAWQ_RESIDUAL_BITS = 16;
/** HAWQ's own order of a unit's modules, so the output reads like its configs. */
const HAWQ_UNIT_ORDER = [
  'quant_act',
  'quant_convbn1',
  'quant_act1',
  'quant_convbn2',
  'quant_act2',
  'quant_convbn3',
  'quant_identity_convbn',
  'quant_act_int32',
];

function hawqBitConfig(p: Policy, scheme: string): Record<string, Record<string, number>> {
  const all = [...p.fixed, ...p.layers];
  const entries = all.every((l) => TORCHVISION_RESNET_LAYER.test(l.name))
    ? hawqResnetEntries(all)
    : all.flatMap((l): [string, number][] => [
        [`${l.name}.quant_act`, l.actBits],
        [l.name, l.weightBits],
      ]);
  return { [`bit_config_${p.model}_${scheme}`]: Object.fromEntries(entries) };
}

/** [module, bits] in HAWQ's order: stem, then stage by stage and unit by unit, then classifier. */
function hawqResnetEntries(layers: PolicyLayer[]): [string, number][] {
  const bottleneck = layers.some((l) => l.name.endsWith('.conv3'));
  // rank = [stage, unit, position in unit]: the stem is stage 0, the classifier stage Infinity
  const modules = new Map<string, { bits: number; rank: [number, number, number] }>();
  const put = (module: string, bits: number, rank: [number, number, number]) => {
    const seen = modules.get(module);
    // a unit's quant_act feeds both conv1 and the downsample conv: keep the finer of the two
    if (!seen || bits > seen.bits) modules.set(module, { bits, rank });
  };
  for (const layer of layers) {
    if (layer.name === 'conv1') {
      put('quant_input', layer.actBits, [0, 0, 0]);
      put(bottleneck ? 'quant_init_convbn' : 'quant_init_block_convbn', layer.weightBits, [0, 0, 1]);
      put('quant_act_int32', HAWQ_RESIDUAL_BITS, [0, 0, 2]);
    } else if (layer.name === 'fc') {
      put('quant_act_output', layer.actBits, [Infinity, 0, 0]);
      put('quant_output', layer.weightBits, [Infinity, 0, 1]);
    } else {
      const [, stage, block, conv] = TORCHVISION_RESNET_LAYER.exec(layer.name)!;
      const unit = Number(block) + 1;
      const inUnit = (module: string, bits: number) =>
        put(`stage${stage}.unit${unit}.${module}`, bits, [Number(stage), unit, HAWQ_UNIT_ORDER.indexOf(module)]);
      const k = conv === undefined ? 1 : Number(conv); // the downsample conv reads the unit's input, like conv1
      inUnit(k === 1 ? 'quant_act' : `quant_act${k - 1}`, layer.actBits);
      inUnit(conv === undefined ? 'quant_identity_convbn' : `quant_convbn${k}`, layer.weightBits);
      inUnit('quant_act_int32', HAWQ_RESIDUAL_BITS);
    }
  }
  const byRank = ([, a]: [string, { rank: number[] }], [, b]: [string, { rank: number[] }]) => {
    const i = a.rank.findIndex((r, j) => r !== b.rank[j]);
    return i < 0 ? 0 : a.rank[i]! < b.rank[i]! ? -1 : 1;
  };
  return [...modules].sort(byRank).map(([module, { bits }]) => [module, bits]);
}
