/**
 * Errors a user can fix (bad file, field or flag). The CLI prints the message as one line and
 * exits with `exitCode`; anything else is a bug and keeps its stack trace.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    // one line whatever an input put in a name it quotes: line breaks are shown, not made
    super(message.replace(/\r\n|[\r\n\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1)));
    this.name = 'UserError';
  }
}

/** How a field is shown in a message: its option name to a library caller, its flag to the CLI. */
export type FieldNamer = (field: string) => string;

/** Marks a field in FieldError.marked: a control character no field name or message holds. */
const FIELD_MARK = '\u0001';

/**
 * A UserError about an option field. The message is built by a function of the namer, so a
 * library caller reads the option's name (`numSample: ...`) and the CLI, catching it, prints
 * the flag it maps that field to (`--num-sample: ...`) without the library knowing any flag.
 */
export class FieldError extends UserError {
  /**
   * The message with every field between marks: plain data, which a copy of the error made by a
   * worker thread keeps (its `build` function is lost), so FieldError.revive can name them again.
   */
  readonly marked: string;

  constructor(readonly build: (name: FieldNamer) => string, exitCode = 2) {
    super(build((field) => field), exitCode);
    this.marked = build((field) => `${FIELD_MARK}${field}${FIELD_MARK}`);
  }

  /** The message with every field named by `name` (a UserError made of it keeps it to one line). */
  named(name: FieldNamer): string {
    return this.build(name);
  }

  /** A FieldError again from the copy a worker thread's error event gives (an Error with `marked`); any other error as it is. */
  static revive(err: unknown): unknown {
    if (err instanceof FieldError || !(err instanceof Error) || err.name !== 'UserError') return err;
    const { marked, exitCode } = err as { marked?: unknown; exitCode?: unknown };
    if (typeof marked !== 'string') return err;
    const parts = marked.split(FIELD_MARK); // a field at every odd index
    return new FieldError((name) => parts.map((part, i) => (i % 2 === 1 ? name(part) : part)).join(''), typeof exitCode === 'number' ? exitCode : 2);
  }
}

/** Exit code for a well-formed problem that has no feasible policy. */
export const EXIT_INFEASIBLE = 3;

/**
 * An input value as a message shows it: a string in quotes (so `"0.03"` is told from `0.03`), cut
 * to 40 characters; other values as JSON would write them, a list or object by its kind.
 */
export function shownValue(value: unknown): string {
  if (typeof value === 'string') {
    const quoted = JSON.stringify(value);
    return quoted.length <= 42 ? quoted : `${quoted.slice(0, 40)}..."`;
  }
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/** Exit code for a search stopped by a limit (--time-limit, memory): the best policy found, with its gap. */
export const EXIT_LIMIT = 4;

/** Exit code for a solver that ended in a state other than optimal, infeasible or a limit. */
export const EXIT_SOLVER_FAILED = 5;
