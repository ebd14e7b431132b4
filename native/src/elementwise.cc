// Elementwise kernels on OpenMP threads: same-shape add, subtract, multiply and ReLU (the wasm
// kernels run on one thread), and ones that replace chains of wasm ops in a training step: ReLU's
// and clipping's gradients (tfjs: step, cast, multiply; compare, compare, and, select) and the
// SGD-momentum update (src/train/optimizer.ts: six ops per variable). Each computes what the ops
// compute, operation by operation in float32.
#include "common.h"

namespace mpq {
namespace {

constexpr int64_t CHUNK = 1 << 16;

enum Binary { ADD = 0, SUB = 1, MUL = 2 };

MPQ_CLONES void binaryRange(int op, const float *a, const float *b, float *out, int64_t n) {
  switch (op) {
    case ADD:
      for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
      break;
    case SUB:
      for (int64_t i = 0; i < n; i++) out[i] = a[i] - b[i];
      break;
    default:
      for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
  }
}

// binary(heap, op, n, a, b, out): out = a + b, a − b or a · b (op 0, 1, 2)
void binary(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int op = info[1].As<Napi::Number>().Int32Value();
  const int64_t n = i64(info[2]);
  const float *a = f32(heap, info[3]), *b = f32(heap, info[4]);
  float *out = f32(heap, info[5]);
  parallelChunks(n, CHUNK, [&](int64_t, int64_t at, int64_t count) { binaryRange(op, a + at, b + at, out + at, count); });
}

MPQ_CLONES void reluRange(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// relu(heap, n, x, y)
void relu(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int64_t n = i64(info[1]);
  const float *x = f32(heap, info[2]);
  float *y = f32(heap, info[3]);
  parallelChunks(n, CHUNK, [&](int64_t, int64_t at, int64_t count) { reluRange(x + at, y + at, count); });
}

MPQ_CLONES void clipGradRange(const float *x, const float *dy, float *dx, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0.0f;
}

// clipGrad(heap, n, x, dy, dx, lo, hi): dx = dy where lo <= x <= hi, else 0
void clipGrad(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int64_t n = i64(info[1]);
  const float *x = f32(heap, info[2]), *dy = f32(heap, info[3]);
  float *dx = f32(heap, info[4]);
  const float lo = info[5].As<Napi::Number>().FloatValue(), hi = info[6].As<Napi::Number>().FloatValue();
  parallelChunks(n, CHUNK, [&](int64_t, int64_t at, int64_t count) { clipGradRange(x + at, dy + at, dx + at, count, lo, hi); });
}

MPQ_CLONES void reluGradRange(const float *x, const float *dy, float *dx, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// reluGrad(heap, n, x, dy, dx): dx = dy where x > 0, else 0
void reluGrad(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int64_t n = i64(info[1]);
  const float *x = f32(heap, info[2]), *dy = f32(heap, info[3]);
  float *dx = f32(heap, info[4]);
  parallelChunks(n, CHUNK, [&](int64_t, int64_t at, int64_t count) { reluGradRange(x + at, dy + at, dx + at, count); });
}

MPQ_CLONES void sgdRange(const float *w, const float *v, const float *g, float *newW, float *newV, int64_t n, float lr, float momentum,
                         float decay, bool decayed) {
  for (int64_t i = 0; i < n; i++) {
    const float grad = decayed ? g[i] + w[i] * decay : g[i];
    const float velocity = v[i] * momentum + grad;
    newV[i] = velocity;
    newW[i] = w[i] - velocity * lr;
  }
}

// sgdMomentum(heap, n, w, v, g, newW, newV, lr, momentum, weightDecay): g' = g + w·wd (when wd > 0),
// v' = v·momentum + g', w' = w − v'·lr
void sgdMomentum(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int64_t n = i64(info[1]);
  const float *w = f32(heap, info[2]), *v = f32(heap, info[3]), *g = f32(heap, info[4]);
  float *newW = f32(heap, info[5]), *newV = f32(heap, info[6]);
  const float lr = info[7].As<Napi::Number>().FloatValue(), momentum = info[8].As<Napi::Number>().FloatValue();
  const float decay = info[9].As<Napi::Number>().FloatValue();
  parallelChunks(n, CHUNK, [&](int64_t, int64_t at, int64_t count) {
    sgdRange(w + at, v + at, g + at, newW + at, newV + at, count, lr, momentum, decay, decay > 0);
  });
}

}  // namespace

void initElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binary", Napi::Function::New(env, binary));
  exports.Set("relu", Napi::Function::New(env, relu));
  exports.Set("clipGrad", Napi::Function::New(env, clipGrad));
  exports.Set("reluGrad", Napi::Function::New(env, reluGrad));
  exports.Set("sgdMomentum", Napi::Function::New(env, sgdMomentum));
}

}  // namespace mpq
