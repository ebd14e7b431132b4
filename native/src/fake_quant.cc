// The fused LSQ fake quantization of src/train/backend/fake-quant.ts over the wasm heap, on OpenMP
// threads. Same arithmetic as the wasm kernels, so the same results: v = x/step in float32,
// clamped to [lo, hi], rounded half to even, times step; dx = dy where lo <= v <= hi; dstep = the
// sum of dy·(lo below, hi above, round(v) − v inside) in float64. One step for the tensor, or one
// per channel (x's last axis).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace mpq {
namespace {

// The loops run over rows of `width` elements, element c of a row with steps[c].

MPQ_CLONES void quantizeRows(const float *x, const float *steps, float *out, int64_t rows, int64_t width, float lo, float hi) {
  for (int64_t r = 0; r < rows; r++, x += width, out += width) {
    for (int64_t c = 0; c < width; c++) {
      const float v = x[c] / steps[c];
      out[c] = std::nearbyint(v < lo ? lo : v > hi ? hi : v) * steps[c];
    }
  }
}

MPQ_CLONES void gradXRows(const float *x, const float *dy, const float *steps, float *dx, int64_t rows, int64_t width, float lo, float hi) {
  for (int64_t r = 0; r < rows; r++, x += width, dy += width, dx += width) {
    for (int64_t c = 0; c < width; c++) {
      const float v = x[c] / steps[c];
      dx[c] = v >= lo && v <= hi ? dy[c] : 0.0f;
    }
  }
}

// round(v) − v is exact in float32 and dy times it exact in float64, so only the sums round.
MPQ_CLONES void gradStepRows(const float *x, const float *dy, const float *steps, double *sums, int64_t rows, int64_t width, float lo, float hi) {
  for (int64_t r = 0; r < rows; r++, x += width, dy += width) {
    for (int64_t c = 0; c < width; c++) {
      const float v = x[c] / steps[c];
      float term = std::nearbyint(v) - v;
      term = v < lo ? lo : term;
      term = v > hi ? hi : term;
      sums[c] += static_cast<double>(dy[c]) * static_cast<double>(term);
    }
  }
}

// Row width for a per-tensor step: the step repeated this many times.
constexpr int64_t FLAT_WIDTH = 256;
constexpr int64_t CHUNK_ELEMENTS = 1 << 16;

// What every call starts with: (heap, n, channels, lo, hi, steps); channels 1 is a per-tensor step.
struct Work {
  uint8_t *heap;
  int64_t n;
  float lo, hi;
  int64_t width;
  std::vector<float> steps;  // one per element of a row
  bool perChannel;

  explicit Work(const Napi::CallbackInfo &info)
      : heap(heapBase(info[0])), n(i64(info[1])), lo(info[3].As<Napi::Number>().FloatValue()),
        hi(info[4].As<Napi::Number>().FloatValue()) {
    const int64_t channels = i64(info[2]);
    if (channels < 1 || n % channels != 0) throw Napi::RangeError::New(info.Env(), "mpq native fake quant: n must be a multiple of channels");
    perChannel = channels > 1;
    const float *s = f32(heap, info[5]);
    width = perChannel ? channels : std::min<int64_t>(FLAT_WIDTH, std::max<int64_t>(n, 1));
    steps = perChannel ? std::vector<float>(s, s + channels) : std::vector<float>(width, s[0]);
  }

  // body(chunk, firstElement, rows, width) over the tensor: chunks of whole rows in parallel, then
  // the partial last row (a per-tensor step's n need not be a multiple of the width).
  template <typename Body>
  void run(Body body) const {
    const int64_t rows = n / width;
    parallelChunks(rows, chunkRows(), [&](int64_t chunk, int64_t row, int64_t count) { body(chunk, row * width, count, width); });
    if (n % width != 0) body(chunkCount() - 1, rows * width, 1, n % width);
  }

  int64_t chunkRows() const { return std::max<int64_t>(1, CHUNK_ELEMENTS / width); }
  // the chunks of whole rows and the partial row's
  int64_t chunkCount() const { return (n / width + chunkRows() - 1) / chunkRows() + 1; }
};

// fakeQuantize(heap, n, channels, lo, hi, steps, x, out)
void fakeQuantize(const Napi::CallbackInfo &info) {
  const Work w(info);
  const float *x = f32(w.heap, info[6]);
  float *out = f32(w.heap, info[7]);
  w.run([&](int64_t, int64_t at, int64_t rows, int64_t width) { quantizeRows(x + at, w.steps.data(), out + at, rows, width, w.lo, w.hi); });
}

// fakeQuantizeGradX(heap, n, channels, lo, hi, steps, x, dy, dx)
void fakeQuantizeGradX(const Napi::CallbackInfo &info) {
  const Work w(info);
  const float *x = f32(w.heap, info[6]), *dy = f32(w.heap, info[7]);
  float *dx = f32(w.heap, info[8]);
  w.run([&](int64_t, int64_t at, int64_t rows, int64_t width) { gradXRows(x + at, dy + at, w.steps.data(), dx + at, rows, width, w.lo, w.hi); });
}

// fakeQuantizeGradStep(heap, n, channels, lo, hi, steps, x, dy, out): out holds one sum per
// channel (one for a per-tensor step). Each chunk sums on its own; the chunks' sums are added in
// chunk order, so the result does not depend on the thread count.
void fakeQuantizeGradStep(const Napi::CallbackInfo &info) {
  const Work w(info);
  const float *x = f32(w.heap, info[6]), *dy = f32(w.heap, info[7]);
  float *out = f32(w.heap, info[8]);
  std::vector<double> sums(w.chunkCount() * w.width, 0.0);
  w.run([&](int64_t chunk, int64_t at, int64_t rows, int64_t width) {
    gradStepRows(x + at, dy + at, w.steps.data(), &sums[chunk * w.width], rows, width, w.lo, w.hi);
  });
  std::vector<double> total(w.width, 0.0);
  for (size_t i = 0; i < sums.size(); i++) total[i % w.width] += sums[i];
  if (w.perChannel) {
    for (int64_t c = 0; c < w.width; c++) out[c] = static_cast<float>(total[c]);
  } else {
    double all = 0;
    for (double t : total) all += t;
    out[0] = static_cast<float>(all);
  }
}

}  // namespace

void initFakeQuant(Napi::Env env, Napi::Object exports) {
  exports.Set("fakeQuantize", Napi::Function::New(env, fakeQuantize));
  exports.Set("fakeQuantizeGradX", Napi::Function::New(env, fakeQuantizeGradX));
  exports.Set("fakeQuantizeGradStep", Napi::Function::New(env, fakeQuantizeGradStep));
}

}  // namespace mpq
