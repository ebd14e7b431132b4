// Batched matrix product on oneDNN: out[b] = op(a[b]) · op(bm[b]), op transposing when asked, a
// batch of 1 broadcast against the other's (tfjs's BatchMatMul, rank 3).
#include <unordered_map>

#include "common.h"

namespace mpq {
namespace {

using dnnl::memory;
using dt = memory::data_type;

struct Matmul : Cached {
  memory::desc a, b, out;
  dnnl::matmul primitive;
  // a is [batchA, m, k] (stored [batchA, k, m] when transposed), b [batchB, k, n] ([batchB, n, k]).
  Matmul(State &s, int64_t batchA, int64_t batchB, int64_t m, int64_t k, int64_t n, bool transposeA, bool transposeB)
      : a({batchA, m, k}, dt::f32, transposeA ? memory::dims{m * k, 1, m} : memory::dims{m * k, k, 1}),
        b({batchB, k, n}, dt::f32, transposeB ? memory::dims{k * n, 1, k} : memory::dims{k * n, n, 1}),
        out({std::max(batchA, batchB), m, n}, dt::f32, memory::dims{m * n, n, 1}),
        primitive(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, out), s.engine)) {}
};

// matmul(heap, a, b, out, [batchA, batchB, m, k, n, transposeA, transposeB])
void matmul(const Napi::CallbackInfo &info) {
  State &s = state(info.Env());
  uint8_t *heap = heapBase(info[0]);
  float *a = f32(heap, info[1]), *b = f32(heap, info[2]), *out = f32(heap, info[3]);
  auto dims = info[4].As<Napi::Int32Array>();
  if (dims.ElementLength() != 7) throw Napi::RangeError::New(info.Env(), "mpq native matmul: dims needs 7 values");
  const int32_t *d = dims.Data();
  const CacheKey key{MATMUL, d[0], d[1], d[2], d[3], d[4], d[5], d[6]};
  auto &c = cached<Matmul>(s, key, [&] { return std::make_unique<Matmul>(s, d[0], d[1], d[2], d[3], d[4], d[5] != 0, d[6] != 0); });
  c.primitive.execute(s.stream, {{DNNL_ARG_SRC, memory(c.a, s.engine, a)},
                                 {DNNL_ARG_WEIGHTS, memory(c.b, s.engine, b)},
                                 {DNNL_ARG_DST, memory(c.out, s.engine, out)}});
  s.stream.wait();
}

}  // namespace

void initMatmul(Napi::Env env, Napi::Object exports) { exports.Set("matmul", Napi::Function::New(env, matmul)); }

}  // namespace mpq
