// Shared pieces of mpq's oneDNN addon: the per-thread state (engine, stream, primitive caches) and
// access to the wasm backend's memory, where every tensor lives. The kernels read and write that
// memory in place: JS passes the memory (a typed array over the wasm heap) and byte offsets.
#pragma once

#include <napi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>

namespace mpq {

// A cached primitive with what it needs besides its arguments' pointers.
struct Cached {
  virtual ~Cached() = default;
};

// The parameters that identify a cached primitive, its kind first; unused tail entries are 0.
using CacheKey = std::array<int64_t, 24>;
enum CacheKind : int64_t { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS, MATMUL, BATCH_NORM_FORWARD, BATCH_NORM_BACKWARD };

// One per JS context (the main thread and each worker): oneDNN streams and the memory objects
// kept in cached primitives must not be shared between threads.
struct State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<CacheKey, std::unique_ptr<Cached>> cache;
};

// Base address of the wasm memory passed as a typed array (Uint8Array over an ArrayBuffer or a
// SharedArrayBuffer: the threaded wasm build's memory is shared, and Node-API reads a typed
// array's data pointer either way).
uint8_t *heapBase(const Napi::Value &heap);

inline float *f32(uint8_t *base, const Napi::Value &offset) {
  return reinterpret_cast<float *>(base + offset.As<Napi::Number>().Int64Value());
}

inline int64_t i64(const Napi::Value &v) { return v.As<Napi::Number>().Int64Value(); }

// Elementwise loops are compiled for several instruction sets and picked when the addon loads, so
// the addon runs on any x86-64 and fast on newer ones.
#if defined(__x86_64__) && defined(__GNUC__)
#define MPQ_CLONES __attribute__((target_clones("avx512f", "avx2", "sse4.1", "default")))
#else
#define MPQ_CLONES
#endif

// body(chunk, first, count) over [0, n) in chunks of `size`, on OpenMP threads when there are
// several (a chunk should be large enough to amortise the fork: ~64k elements).
template <typename Body>
void parallelChunks(int64_t n, int64_t size, Body body) {
  const int64_t chunks = (n + size - 1) / size;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t i = 0; i < chunks; i++) body(i, i * size, std::min(size, n - i * size));
}

// Registers each kernel family's functions on the addon's exports.
void initConvolution(Napi::Env env, Napi::Object exports);
void initMatmul(Napi::Env env, Napi::Object exports);
void initBatchNorm(Napi::Env env, Napi::Object exports);
void initFakeQuant(Napi::Env env, Napi::Object exports);
void initElementwise(Napi::Env env, Napi::Object exports);
void initLayout(Napi::Env env, Napi::Object exports);

State &state(const Napi::Env &env);

// Finds or makes the cached primitive for `key`.
template <typename T, typename Make>
T &cached(State &s, const CacheKey &key, Make make) {
  auto it = s.cache.find(key);
  if (it == s.cache.end()) it = s.cache.emplace(key, make()).first;
  return static_cast<T &>(*it->second);
}

}  // namespace mpq
