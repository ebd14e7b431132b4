import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isZooModel, zooInput } from '../model/zoo.js';
import { readJsonFile } from '../util/json-file.js';
import type { Policy } from './policy.js';

/**
 * What mpq knows of the model behind a policy, for configs of other tools: its dataset and classes
 * and how long its full-precision training ran. Read from the policy's indicators (their `meta`),
 * the checkpoint they were pretrained from and the zoo; each field absent where no source says.
 */
export interface ModelFacts {
  dataset?: string;
  numClasses?: number;
  /** epochs of the full-precision training (the checkpoint the indicators were pretrained from) */
  epochs?: number;
  /** where the facts came from, for the config's comment */
  sources: string[];
}

/** Classes of the datasets mpq reads (and ImageNet, LIMPQ's). */
const CLASSES: Record<string, number> = { mnist: 10, 'mnist-idx': 10, cifar10: 10, imagenet: 1000 };

/** The zoo's input shapes name their dataset: digits, CIFAR-10 images or ImageNet crops. */
function zooDataset(model: string): string | undefined {
  if (!isZooModel(model)) return undefined;
  const [c, h] = zooInput(model);
  return c === 1 && h === 28 ? 'mnist' : c === 3 && h === 32 ? 'cifar10' : c === 3 && h === 224 ? 'imagenet' : undefined;
}

/** A JSON file's object, or undefined when it is missing or not one (facts are best effort). */
function readObject(path: string | undefined): Record<string, unknown> | undefined {
  if (path === undefined || !existsSync(path)) return undefined;
  try {
    const data = readJsonFile(path, 'JSON');
    return typeof data === 'object' && data !== null && !Array.isArray(data) ? data as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);

export function modelFacts(p: Policy): ModelFacts {
  const facts: ModelFacts = { sources: [] };
  const indicatorsPath = p.indicators?.path;
  const meta = readObject(indicatorsPath?.endsWith('.json') ? indicatorsPath : undefined)?.meta as Record<string, unknown> | undefined;
  if (meta && str(meta.dataset)) {
    facts.dataset = str(meta.dataset);
    facts.sources.push(indicatorsPath!);
  }
  const from = meta && str(meta.from);
  const checkpoint = from === undefined ? undefined : readObject(join(from, 'model.json'));
  const training = checkpoint?.training as Record<string, unknown> | undefined;
  if (training?.stage === 'train' && int(training.epochs)) {
    facts.epochs = int(training.epochs);
    facts.sources.push(from!);
  }
  if (facts.dataset === undefined && zooDataset(p.model)) {
    facts.dataset = zooDataset(p.model);
    facts.sources.push(`the zoo's ${p.model}`);
  }
  if (facts.dataset !== undefined && CLASSES[facts.dataset] !== undefined) facts.numClasses = CLASSES[facts.dataset];
  return facts;
}
