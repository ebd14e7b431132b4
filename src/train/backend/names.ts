/** The tfjs backends a run can ask for (a leaf module: data-parallel.ts needs the type, index.ts the values). */
export type BackendName = 'auto' | 'wasm' | 'cpu' | 'tensorflow';

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'wasm', 'cpu', 'tensorflow'];
