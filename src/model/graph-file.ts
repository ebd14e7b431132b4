/**
 * A graph's structure as JSON, checked: what checkpoints and packed files record of an imported
 * model, so they can be evaluated, packed and resumed without the source file. Every field goes
 * through a schema and the shapes are recomputed (graphFromJson), so an edited or corrupted
 * record is one line naming the field or node.
 */
import * as v from 'valibot';
import { UserError } from '../util/errors.js';
import { describeIssues } from '../util/schema.js';
import { ACTIVATIONS, GraphError, graphFromJson, type Graph, type GraphJson } from './graph.js';

const int = v.pipe(v.number(), v.integer('expected an integer'));
const size = v.pipe(int, v.minValue(0, 'expected an integer ≥ 0'));
const positive = v.pipe(int, v.minValue(1, 'expected a positive integer'));
const pair = v.tuple([positive, positive]);
const pads = v.tuple([size, size, size, size]);
const base = { name: v.pipe(v.string(), v.minLength(1, 'expected a name')), inputs: v.array(v.string()), shape: v.array(positive) };

const nodeSchema = v.variant('op', [
  v.object({ ...base, op: v.literal('input') }),
  v.object({ ...base, op: v.literal('conv'), filters: positive, kernel: pair, strides: pair, dilations: pair, pads, groups: positive, bias: v.boolean() }),
  v.object({ ...base, op: v.literal('dense'), units: positive, bias: v.boolean() }),
  v.object({ ...base, op: v.literal('batchnorm'), epsilon: v.pipe(v.number(), v.minValue(0, 'expected ε ≥ 0')) }),
  v.object({
    ...base, op: v.literal('activation'), fn: v.picklist(ACTIVATIONS, `expected one of ${ACTIVATIONS.join(', ')}`),
    min: v.optional(v.number()), max: v.optional(v.number()), alpha: v.optional(v.number()), beta: v.optional(v.number()),
  }),
  v.object({ ...base, op: v.literal('add') }),
  v.object({ ...base, op: v.literal('concat'), axis: int }),
  v.object({ ...base, op: v.picklist(['maxpool', 'avgpool']), kernel: pair, strides: pair, pads, countIncludePad: v.optional(v.boolean()) }),
  v.object({ ...base, op: v.picklist(['globalavgpool', 'globalmaxpool']), keepDims: v.boolean() }),
  v.object({ ...base, op: v.literal('flatten'), channelsFirst: v.boolean() }),
  v.object({ ...base, op: v.literal('reshape'), target: v.array(int) }),
  v.object({ ...base, op: v.literal('pad'), pads: v.array(v.tuple([size, size])), value: v.number() }),
  v.object({ ...base, op: v.literal('slice'), ranges: v.array(v.tuple([size, size, positive])) }),
  v.object({ ...base, op: v.literal('identity') }),
  v.object({ ...base, op: v.literal('opaque'), kind: v.string(), outShape: v.array(positive) }),
], 'expected a node with a known op');

const graphSchema = v.object({
  format: v.literal('mpq-graph', "expected 'mpq-graph'"),
  version: v.literal(1, 'expected 1'),
  name: v.string(),
  source: v.string(),
  inputLayout: v.picklist(['nhwc', 'nchw']),
  output: v.string(),
  nodes: v.pipe(v.array(nodeSchema), v.minLength(2, 'expected an input and at least one layer')),
});

/** The graph a record holds; `where` names it in errors (e.g. `ckpt/model.json: graph`). */
export function parseGraphJson(data: unknown, where: string): Graph {
  const parsed = v.safeParse(graphSchema, data);
  if (!parsed.success) throw new UserError(`${where}.${describeIssues(parsed.issues)}`);
  try {
    return graphFromJson(parsed.output as GraphJson);
  } catch (err) {
    if (err instanceof GraphError) throw new UserError(`${where}: ${err.message}`);
    throw err;
  }
}
