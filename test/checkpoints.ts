import { saveCheckpoint } from '../src/train/checkpoint.js';
import { createModel, disposeModel, namedVariables } from '../src/train/models.js';

/** An untrained model saved as a full-precision checkpoint in `dir`: enough where a test checks wiring, not accuracy. */
export function saveUntrainedCheckpoint(dir: string, model: string, seed: number): void {
  const m = createModel(model, { seed });
  saveCheckpoint(dir, { model, bits: [], training: { stage: 'train', epochsDone: 1, epochs: 1 }, meta: {} }, namedVariables(m));
  disposeModel(m);
}
