/** `npm run bench`: every benchmark, each printing its figures and its ratio to a reference. */
import { benchQuantizers, parseQuantizerBenchArgs } from './quantizers.js';
import { benchRecipe } from './recipe.js';
import { benchRl } from './rl.js';
import { benchSimulate, parseSimulateBenchArgs } from './simulate.js';
import { benchSearch } from './search.js';
import { benchOnnxImport, formatOnnxImport } from './onnx-import.js';
import { benchSweepView } from './sweep-view.js';
import { benchExport, formatExport } from './export.js';
import { benchSearchScale, parseScaleBenchArgs } from './search-scale.js';
import { benchTrainStep, formatTrainStep } from './train-step.js';

await benchSearch();
await benchSearchScale(parseScaleBenchArgs());
await benchSweepView();
await benchRl();
console.log(formatTrainStep(benchTrainStep()));
// mnist-cnn trained 1, 3 and 10 epochs (seeds 1–3) beside its PyTorch twin (≈15 min; skipped without Python's torch)
await benchRecipe();
// torchvision resnet18 / mobilenet_v2 through the ONNX importer (skipped without Python's torch)
for (const keepBn of [false, true]) console.log(formatOnnxImport(await benchOnnxImport(keepBn), keepBn));
// mpq export-model: ONNX sizes at opsets 13 / 21 and onnxruntime's throughput against tfjs-wasm's
console.log(formatExport(await benchExport()));
// the seed's simulated-quantization table and the packed W3A4 policy's size (≈10 min; --from DIR skips the FP training)
await benchSimulate(parseSimulateBenchArgs(process.argv.slice(2)));
// the longest (≈15 min): every quantizer fine-tuned on MNIST; `npm run bench -- --from DIR` skips its FP training
await benchQuantizers(parseQuantizerBenchArgs(process.argv.slice(2)));
