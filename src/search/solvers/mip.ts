import type { Problem } from '../problem.js';
import { costScale } from './solver.js';

/** Binary variable x_i_j: layer i takes its choice j. Shared by the general MIP solvers. */
export function varName(i: number, j: number): string {
  return `x_${i}_${j}`;
}

/** Read a one-hot choice per layer back from a MIP solver's variable values. */
export function choiceFromBinaries(problem: Problem, value: (name: string) => number): number[] {
  return problem.choices.map((cs, i) => {
    let best = 0;
    for (let j = 1; j < cs.length; j++) if (value(varName(i, j)) > value(varName(i, best))) best = j;
    return best;
  });
}

/** The problem in CPLEX LP format (read by HiGHS), costs scaled by `costScale`. Numbers keep full precision. */
export function toLpFormat(problem: Problem): string {
  const scale = costScale(problem);
  const obj: string[] = [];
  const rows: string[] = [];
  const bins: string[] = [];
  problem.choices.forEach((cs, i) => {
    const names = cs.map((_, j) => varName(i, j));
    bins.push(...names);
    cs.forEach((c, j) => obj.push(`${signed(c.cost * scale)} ${names[j]}`));
    rows.push(` one_${i}: ${names.join(' + ')} = 1`);
  });
  problem.rows.forEach((row, k) => {
    const terms = problem.choices.flatMap((cs, i) => cs.map((c, j) => `${signed(c.use[k])} ${varName(i, j)}`));
    rows.push(` ${row.name}_${k}: ${terms.join(' ')} <= ${num(row.limit)}`);
  });
  return ['Minimize', ` obj: ${obj.join(' ')}`, 'Subject To', ...rows, 'Binary', ` ${bins.join(' ')}`, 'End', ''].join('\n');
}

function num(x: number): string {
  return String(x);
}

function signed(x: number): string {
  return x < 0 ? `- ${num(-x)}` : `+ ${num(x)}`;
}
