/** The tfjs backends a run can ask for (a leaf module: data-parallel.ts needs the type, index.ts the values). */
export type BackendName = 'auto' | 'native' | 'wasm' | 'cpu' | 'tensorflow';

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'native', 'wasm', 'cpu', 'tensorflow'];
