/**
 * The backend initBackend chose and why, as one line, for the CLI to say after a command's result:
 * said before, it would stand ahead of an input error found later and make that error two lines.
 * A leaf module, so the CLI reads it without loading tfjs.
 */
let line: string | undefined;

export function recordBackendChoice(text: string): void {
  line = text;
}

/** 'backend: native (oneDNN 2.6.3 kernels over wasm, 2 threads)', once a backend was started. */
export function backendChoice(): string | undefined {
  return line;
}
