/**
 * Errors a user can fix (bad file, field or flag). The CLI prints the message as one line and
 * exits with `exitCode`; anything else is a bug and keeps its stack trace.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UserError';
  }
}

/** Exit code for a well-formed problem that has no feasible policy. */
export const EXIT_INFEASIBLE = 3;

/** Exit code for a search stopped by a limit (--time-limit, memory): the best policy found, with its gap. */
export const EXIT_LIMIT = 4;

/** Exit code for a solver that ended in a state other than optimal, infeasible or a limit. */
export const EXIT_SOLVER_FAILED = 5;
