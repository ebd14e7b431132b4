/**
 * Backend selection for training: tfjs-node (native TensorFlow) when installed, else tfjs's wasm
 * backend, multi-threaded and with mpq's training kernels (wasm-kernels.ts); gradients tfjs lacks
 * (gradients.ts) on every backend; the fused fake-quantization kernel (fake-quant.ts) set as
 * quant/'s fakeQuantize kernel. Also re-exports the wasm-friendly training ops (ops.ts) and
 * the backend names (names.ts).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { useFakeQuantizeKernel } from '../../quant/quantizer.js';
import { UserError } from '../../util/errors.js';
import { fusedFakeQuantize, fusedFakeQuantizeApplies } from './fake-quant.js';
import { BACKEND_NAMES, type BackendName } from './names.js';
import { registerMissingGradients } from './gradients.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { defaultWasmThreads, registerThreadedWasmBackend, wasmThreadsAvailable } from './wasm-threads.js';

export { defaultWasmThreads } from './wasm-threads.js';

export { batchNormTrain, scaleShiftPerChannel, sumPerChannel } from './ops.js';
export type { BatchNormTrainResult } from './ops.js';
export { BACKEND_NAMES, type BackendName } from './names.js';

export interface InitBackendOptions {
  /**
   * XNNPACK threads for 'wasm' (default: idle cores, see defaultWasmThreads; at most 8); 1 uses
   * tfjs's own single-threaded build. Takes effect when the wasm backend first starts in the process.
   */
  wasmThreads?: number;
}

/** Optional native accelerators, fastest first. Held in variables so tsc does not resolve them. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

/** UserError messages are one line. */
function firstLine(error: unknown): string {
  return String((error as Error | null)?.message ?? error).split('\n')[0];
}

/**
 * Imports the first installed tfjs-node package, which registers the 'tensorflow' backend.
 * Returns why none could be loaded, or undefined on success.
 */
async function importNativeBackend(): Promise<string | undefined> {
  const failures: string[] = [];
  for (const specifier of NATIVE_PACKAGES) {
    try {
      await import(specifier);
      return undefined;
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
      failures.push(missing ? `${specifier} is not installed` : `${specifier} failed to load (${firstLine(error)})`);
    }
  }
  return failures.join('; ');
}

async function activate(name: string, flagValue: string): Promise<string> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    throw new UserError(`--backend ${flagValue}: backend '${name}' failed to start: ${firstLine(error)}`);
  }
  if (!ok) throw new UserError(`--backend ${flagValue}: backend '${name}' failed to start`);
  await tf.ready();
  return tf.getBackend();
}

/** The 'wasm' factory has not run yet, so it can still be swapped for the threaded build. */
function wasmNotStarted(): boolean {
  return !tf.engine().registry['wasm'];
}

async function activateWasm(flagValue: string, threads: number): Promise<string> {
  registerWasmTrainingKernels();
  if (threads > 1 && wasmThreadsAvailable() && wasmNotStarted()) registerThreadedWasmBackend(threads);
  return activate('wasm', flagValue);
}

/**
 * Sets the tfjs backend and registers mpq's training kernels; returns the name actually in use.
 * 'auto': tfjs-node-gpu or tfjs-node when installed (optional accelerator), else wasm. A requested
 * backend that is not available throws UserError naming the flag value.
 */
export async function initBackend(name: BackendName = 'auto', options: InitBackendOptions = {}): Promise<string> {
  registerMissingGradients();
  useFakeQuantizeKernel({ applies: fusedFakeQuantizeApplies, run: fusedFakeQuantize });
  const threads = options.wasmThreads ?? defaultWasmThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new UserError(`wasm threads must be a positive integer, got ${options.wasmThreads}`);
  }
  switch (name) {
    case 'auto':
      // The native backend is an optional accelerator: without it (or if it is broken), use wasm.
      if ((await importNativeBackend()) === undefined) return activate('tensorflow', name);
      return activateWasm(name, threads);
    case 'tensorflow': {
      const failure = await importNativeBackend();
      if (failure !== undefined) throw new UserError(`--backend tensorflow: ${failure} (use --backend wasm)`);
      return activate('tensorflow', name);
    }
    case 'wasm':
      return activateWasm(name, threads);
    case 'cpu':
      return activate('cpu', name);
    default:
      throw new UserError(`--backend ${String(name)}: unknown backend (expected one of ${BACKEND_NAMES.join(', ')})`);
  }
}
