/** `npm run bench`: every benchmark, each printing its figures and its ratio to a reference. */
import { benchSearch } from './search.js';
import { benchTrainStep } from './train-step.js';

await benchSearch();
const r = await benchTrainStep({});
console.log(JSON.stringify(r));
