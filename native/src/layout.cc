// Copies of boxes of elements between strided layouts, on OpenMP threads: the Slice, StridedSlice
// and PadV2 kernels (tfjs-backend-wasm's Slice is a JS loop per element, its PadV2 one thread).
#include <cstring>
#include <vector>

#include "common.h"

namespace mpq {
namespace {

std::vector<int64_t> int32s(const Napi::Value &v) {
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int64_t>(a.Data(), a.Data() + a.ElementLength());
}

// copyBox(heap, counts, src, srcStrides, dst, dstStrides): element i (a multi-index within counts,
// last axis fastest) goes from src + Σ i·srcStrides to dst + Σ i·dstStrides; strides in elements
// (a source stride may be negative).
void copyBox(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const std::vector<int64_t> counts = int32s(info[1]), srcStrides = int32s(info[3]), dstStrides = int32s(info[5]);
  const float *src = f32(heap, info[2]);
  float *dst = f32(heap, info[4]);
  const size_t rank = counts.size();
  if (rank == 0 || srcStrides.size() != rank || dstStrides.size() != rank) throw Napi::RangeError::New(info.Env(), "mpq native copyBox: rank mismatch");
  int64_t rows = 1;
  for (size_t j = 0; j + 1 < rank; j++) rows *= counts[j];
  const int64_t run = counts[rank - 1], srcStep = srcStrides[rank - 1], dstStep = dstStrides[rank - 1];
  if (rows == 0 || run == 0) return;
  // rows of the last axis, in chunks of ~64k elements
  const int64_t rowsPerChunk = std::max<int64_t>(1, (1 << 16) / run);
  parallelChunks(rows, rowsPerChunk, [&](int64_t, int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; r++) {
      int64_t s = 0, d = 0, rest = r;
      for (size_t j = rank - 1; j-- > 0;) {
        const int64_t k = rest % counts[j];
        rest /= counts[j];
        s += k * srcStrides[j];
        d += k * dstStrides[j];
      }
      if (srcStep == 1 && dstStep == 1) {
        std::memcpy(dst + d, src + s, run * sizeof(float));
      } else {
        for (int64_t k = 0; k < run; k++) dst[d + k * dstStep] = src[s + k * srcStep];
      }
    }
  });
}

// fill(heap, n, dst, value)
void fill(const Napi::CallbackInfo &info) {
  uint8_t *heap = heapBase(info[0]);
  const int64_t n = i64(info[1]);
  float *dst = f32(heap, info[2]);
  const float value = info[3].As<Napi::Number>().FloatValue();
  parallelChunks(n, 1 << 16, [&](int64_t, int64_t at, int64_t count) { std::fill(dst + at, dst + at + count, value); });
}

}  // namespace

void initLayout(Napi::Env env, Napi::Object exports) {
  exports.Set("copyBox", Napi::Function::New(env, copyBox));
  exports.Set("fill", Napi::Function::New(env, fill));
}

}  // namespace mpq
