/** `npm run bench`: every benchmark, each printing its figures and its ratio to a reference. */
import { benchRl } from './rl.js';
import { benchSearch } from './search.js';
import { benchTrainStep, formatTrainStep } from './train-step.js';

await benchSearch();
await benchRl();
console.log(formatTrainStep(await benchTrainStep({})));
