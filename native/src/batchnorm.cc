// Training-mode batch normalisation on oneDNN over an NHWC tensor (statistics over N, H, W):
// forward with the batch's mean and biased variance, and backward to x, gamma and beta.
#include <cstring>
#include <unordered_map>

#include "common.h"

namespace mpq {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

const auto FLAGS = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

memory::desc dataDesc(const int32_t *d) { return memory::desc({d[0], d[3], d[1], d[2]}, dt::f32, tag::nhwc); }

dnnl::batch_normalization_forward::primitive_desc forwardDesc(State &s, const memory::desc &data, float epsilon) {
  return {{dnnl::prop_kind::forward_training, data, epsilon, FLAGS}, s.engine};
}

struct Forward : Cached {
  memory::desc data, channels;
  dnnl::batch_normalization_forward primitive;
  Forward(State &s, const int32_t *d, float epsilon)
      : data(dataDesc(d)), channels({d[3]}, dt::f32, tag::x), primitive(forwardDesc(s, data, epsilon)) {}
};

struct Backward : Cached {
  memory::desc data, channels;
  dnnl::batch_normalization_backward primitive;
  Backward(State &s, const int32_t *d, float epsilon)
      : data(dataDesc(d)), channels({d[3]}, dt::f32, tag::x),
        primitive(dnnl::batch_normalization_backward::primitive_desc(
            {dnnl::prop_kind::backward, data, data, epsilon, FLAGS}, s.engine, forwardDesc(s, data, epsilon))) {}
};

const int32_t *shapeOf(const Napi::Value &v) {
  auto a = v.As<Napi::Int32Array>();
  if (a.ElementLength() != 4) throw Napi::RangeError::New(v.Env(), "mpq native batch norm: shape needs [n, h, w, c]");
  return a.Data();
}

CacheKey keyOf(CacheKind kind, const int32_t *d, float epsilon) {
  int32_t epsilonBits;
  std::memcpy(&epsilonBits, &epsilon, sizeof epsilonBits);
  return {kind, d[0], d[1], d[2], d[3], epsilonBits};
}

// batchNormForward(heap, [n, h, w, c], epsilon, x, gamma, beta, y, mean, variance)
void batchNormForward(const Napi::CallbackInfo &info) {
  State &s = state(info.Env());
  uint8_t *heap = heapBase(info[0]);
  const int32_t *d = shapeOf(info[1]);
  const float epsilon = info[2].As<Napi::Number>().FloatValue();
  auto &c = cached<Forward>(s, keyOf(BATCH_NORM_FORWARD, d, epsilon), [&] { return std::make_unique<Forward>(s, d, epsilon); });
  auto channel = [&](int i) { return memory(c.channels, s.engine, f32(heap, info[i])); };
  c.primitive.execute(s.stream, {{DNNL_ARG_SRC, memory(c.data, s.engine, f32(heap, info[3]))},
                                 {DNNL_ARG_SCALE, channel(4)},
                                 {DNNL_ARG_SHIFT, channel(5)},
                                 {DNNL_ARG_DST, memory(c.data, s.engine, f32(heap, info[6]))},
                                 {DNNL_ARG_MEAN, channel(7)},
                                 {DNNL_ARG_VARIANCE, channel(8)}});
  s.stream.wait();
}

// batchNormBackward(heap, [n, h, w, c], epsilon, x, dy, gamma, mean, variance, dx, dgamma, dbeta)
void batchNormBackward(const Napi::CallbackInfo &info) {
  State &s = state(info.Env());
  uint8_t *heap = heapBase(info[0]);
  const int32_t *d = shapeOf(info[1]);
  const float epsilon = info[2].As<Napi::Number>().FloatValue();
  auto &c = cached<Backward>(s, keyOf(BATCH_NORM_BACKWARD, d, epsilon), [&] { return std::make_unique<Backward>(s, d, epsilon); });
  auto channel = [&](int i) { return memory(c.channels, s.engine, f32(heap, info[i])); };
  c.primitive.execute(s.stream, {{DNNL_ARG_SRC, memory(c.data, s.engine, f32(heap, info[3]))},
                                 {DNNL_ARG_DIFF_DST, memory(c.data, s.engine, f32(heap, info[4]))},
                                 {DNNL_ARG_SCALE, channel(5)},
                                 // oneDNN 2.6 counts the shift among the inputs of the backward
                                 // pass, which does not read it: gamma's buffer stands in
                                 {DNNL_ARG_SHIFT, channel(5)},
                                 {DNNL_ARG_MEAN, channel(6)},
                                 {DNNL_ARG_VARIANCE, channel(7)},
                                 {DNNL_ARG_DIFF_SRC, memory(c.data, s.engine, f32(heap, info[8]))},
                                 {DNNL_ARG_DIFF_SCALE, channel(9)},
                                 {DNNL_ARG_DIFF_SHIFT, channel(10)}});
  s.stream.wait();
}

}  // namespace

void initBatchNorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForward", Napi::Function::New(env, batchNormForward));
  exports.Set("batchNormBackward", Napi::Function::New(env, batchNormBackward));
}

}  // namespace mpq
