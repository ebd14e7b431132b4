// 2-D convolution forward, backward-data and backward-weights on oneDNN, NHWC activations and
// tfjs's filter layout [kh, kw, in/groups, out] (groups = channels with multiplier out/in is
// tfjs's depthwise [kh, kw, channels, multiplier]; output channel g·out/groups + o is group g's).
// The primitive picks its own weights layout; the (small) filter is reordered to and from it.
#include <algorithm>
#include <unordered_map>

#include "common.h"

namespace mpq {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// the `kind` argument of conv()
enum Kind { FORWARD = CONV_FORWARD, BACKWARD_DATA = CONV_BACKWARD_DATA, BACKWARD_WEIGHTS = CONV_BACKWARD_WEIGHTS };

// Geometry as JS passes it (Int32Array): batch, input, output, filter, strides, dilations, top and
// left padding (the output size implies the rest), groups.
struct Geometry {
  int64_t n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, groups;
};
constexpr int GEOMETRY_LENGTH = 16;

Geometry readGeometry(const Napi::Value &v) {
  auto a = v.As<Napi::Int32Array>();
  if (a.ElementLength() != GEOMETRY_LENGTH) throw Napi::RangeError::New(v.Env(), "mpq native conv: geometry needs 16 values");
  const int32_t *p = a.Data();
  Geometry g{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]};
  if (g.groups < 1 || g.ic % g.groups != 0 || g.oc % g.groups != 0) {
    throw Napi::RangeError::New(v.Env(), "mpq native conv: channels must divide into groups");
  }
  return g;
}

// The memory descriptors of one convolution: activations NHWC, the filter in tfjs's layout.
struct Descs {
  memory::desc src, userWeights, anyWeights, dst, bias;
  memory::dims strides, dilates, padL, padR;
};

Descs descs(const Geometry &g, bool bias) {
  Descs d;
  d.src = memory::desc({g.n, g.ic, g.ih, g.iw}, dt::f32, tag::nhwc);
  d.dst = memory::desc({g.n, g.oc, g.oh, g.ow}, dt::f32, tag::nhwc);
  const int64_t icg = g.ic / g.groups, ocg = g.oc / g.groups;
  if (g.groups == 1) {
    memory::dims dims{g.oc, g.ic, g.kh, g.kw};
    d.userWeights = memory::desc(dims, dt::f32, memory::dims{1, g.oc, g.kw * g.ic * g.oc, g.ic * g.oc});
    d.anyWeights = memory::desc(dims, dt::f32, tag::any);
  } else {
    memory::dims dims{g.groups, ocg, icg, g.kh, g.kw};
    d.userWeights = memory::desc(dims, dt::f32, memory::dims{ocg, 1, g.oc, g.kw * icg * g.oc, icg * g.oc});
    d.anyWeights = memory::desc(dims, dt::f32, tag::any);
  }
  if (bias) d.bias = memory::desc({g.oc}, dt::f32, tag::x);
  d.strides = {g.sh, g.sw};
  d.dilates = {g.dh - 1, g.dw - 1};  // oneDNN counts the gaps: 0 is no dilation
  d.padL = {g.pt, g.pl};
  // Padding past what the last output window reads would change oneDNN's output size; a window
  // that stops short of the input's end (padding 'valid' at stride > 1) is no padding at all.
  auto after = [](int64_t in, int64_t out, int64_t k, int64_t s, int64_t dil, int64_t before) {
    return std::max<int64_t>(0, (out - 1) * s + (k - 1) * dil + 1 - in - before);
  };
  d.padR = {after(g.ih, g.oh, g.kh, g.sh, g.dh, g.pt), after(g.iw, g.ow, g.kw, g.sw, g.dw, g.pl)};
  return d;
}

dnnl::convolution_forward::primitive_desc forwardDesc(State &s, const Descs &d, dnnl::prop_kind prop) {
  dnnl::convolution_forward::desc desc(prop, dnnl::algorithm::convolution_direct, d.src, d.anyWeights, d.bias, d.dst,
                                       d.strides, d.dilates, d.padL, d.padR);
  return dnnl::convolution_forward::primitive_desc(desc, s.engine);
}

// A reorder between the filter's tfjs layout and the primitive's, when they differ.
struct WeightsReorder {
  bool needed = false;
  memory primitiveWeights;  // owned buffer in the primitive's layout
  dnnl::reorder reorder;

  WeightsReorder(State &s, const memory::desc &user, const memory::desc &prim, bool toPrimitive) {
    if (user == prim) return;
    needed = true;
    primitiveWeights = memory(prim, s.engine);
    dnnl::reorder::primitive_desc pd = toPrimitive ? dnnl::reorder::primitive_desc(s.engine, user, s.engine, prim)
                                                   : dnnl::reorder::primitive_desc(s.engine, prim, s.engine, user);
    reorder = dnnl::reorder(pd);
  }

  // The filter at `user` as the primitive reads it (reordered into its buffer when needed).
  memory toPrimitive(State &s, memory user) {
    if (!needed) return user;
    reorder.execute(s.stream, user, primitiveWeights);
    return primitiveWeights;
  }
};

dnnl::convolution_forward::primitive_desc forwardTrainingDesc(State &s, const Descs &d) {
  return forwardDesc(s, d, dnnl::prop_kind::forward_training);
}

dnnl::convolution_backward_data::primitive_desc backwardDataDesc(State &s, const Descs &d) {
  dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, d.src, d.anyWeights, d.dst, d.strides,
                                             d.dilates, d.padL, d.padR);
  return dnnl::convolution_backward_data::primitive_desc(desc, s.engine, forwardTrainingDesc(s, d));
}

dnnl::convolution_backward_weights::primitive_desc backwardWeightsDesc(State &s, const Descs &d) {
  dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, d.src, d.anyWeights, d.bias, d.dst,
                                                d.strides, d.dilates, d.padL, d.padR);
  return dnnl::convolution_backward_weights::primitive_desc(desc, s.engine, forwardTrainingDesc(s, d));
}

// A cached convolution of one direction: its descriptors, primitive and filter reorder (into the
// primitive's layout when it reads the filter, out of it when it writes the filter's gradient).
template <typename Primitive>
struct Conv : Cached {
  Descs d;
  typename Primitive::primitive_desc pd;
  Primitive primitive;
  WeightsReorder weights;
  template <typename MakeDesc>
  Conv(State &s, const Geometry &g, bool bias, MakeDesc makeDesc, bool readsFilter)
      : d(descs(g, bias)), pd(makeDesc(s, d)), primitive(pd),
        weights(s, d.userWeights, pd.query_md(readsFilter ? dnnl::query::weights_md : dnnl::query::diff_weights_md), readsFilter) {}
};

using Forward = Conv<dnnl::convolution_forward>;
using BackwardData = Conv<dnnl::convolution_backward_data>;
using BackwardWeights = Conv<dnnl::convolution_backward_weights>;

CacheKey keyOf(Kind kind, const Geometry &g, bool bias) {
  return {kind, bias, g.n, g.ih, g.iw, g.ic, g.oh, g.ow, g.oc, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.groups};
}

// conv(kind, heap, geometry, x, w, y, bias): the three tensors are the x-like, filter-like and
// y-like operands at byte offsets into the heap. FORWARD reads x, w (and bias unless < 0) and
// writes y; BACKWARD_DATA reads y (dy) and w and writes x (dx); BACKWARD_WEIGHTS reads x and y (dy)
// and writes w (dw) and, unless bias < 0, the bias gradient there.
void conv(const Napi::CallbackInfo &info) {
  State &s = state(info.Env());
  const auto kind = static_cast<Kind>(info[0].As<Napi::Number>().Int32Value());
  uint8_t *heap = heapBase(info[1]);
  const Geometry g = readGeometry(info[2]);
  float *x = f32(heap, info[3]), *w = f32(heap, info[4]), *y = f32(heap, info[5]);
  const bool bias = i64(info[6]) >= 0;
  float *b = bias ? f32(heap, info[6]) : nullptr;
  const CacheKey key = keyOf(kind, g, bias);
  switch (kind) {
    case FORWARD: {
      auto &c = cached<Forward>(s, key, [&] { return std::make_unique<Forward>(s, g, bias, forwardTrainingDesc, true); });
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(c.d.src, s.engine, x)},
                                           {DNNL_ARG_WEIGHTS, c.weights.toPrimitive(s, memory(c.d.userWeights, s.engine, w))},
                                           {DNNL_ARG_DST, memory(c.d.dst, s.engine, y)}};
      if (bias) args.emplace(DNNL_ARG_BIAS, memory(c.d.bias, s.engine, b));
      c.primitive.execute(s.stream, args);
      break;
    }
    case BACKWARD_DATA: {
      auto &c = cached<BackwardData>(s, key, [&] { return std::make_unique<BackwardData>(s, g, false, backwardDataDesc, true); });
      c.primitive.execute(s.stream, {{DNNL_ARG_DIFF_DST, memory(c.d.dst, s.engine, y)},
                                     {DNNL_ARG_WEIGHTS, c.weights.toPrimitive(s, memory(c.d.userWeights, s.engine, w))},
                                     {DNNL_ARG_DIFF_SRC, memory(c.d.src, s.engine, x)}});
      break;
    }
    case BACKWARD_WEIGHTS: {
      auto &c = cached<BackwardWeights>(s, key, [&] { return std::make_unique<BackwardWeights>(s, g, bias, backwardWeightsDesc, false); });
      memory userW(c.d.userWeights, s.engine, w);
      memory diffWeights = c.weights.needed ? c.weights.primitiveWeights : userW;
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(c.d.src, s.engine, x)},
                                           {DNNL_ARG_DIFF_DST, memory(c.d.dst, s.engine, y)},
                                           {DNNL_ARG_DIFF_WEIGHTS, diffWeights}};
      if (bias) args.emplace(DNNL_ARG_DIFF_BIAS, memory(c.d.bias, s.engine, b));
      c.primitive.execute(s.stream, args);
      if (c.weights.needed) c.weights.reorder.execute(s.stream, diffWeights, userW);
      break;
    }
    default:
      throw Napi::RangeError::New(info.Env(), "mpq native conv: unknown kind");
  }
  s.stream.wait();
}

// The implementation oneDNN picked for a convolution (for benchmarks and tests).
Napi::Value convImplementation(const Napi::CallbackInfo &info) {
  State &s = state(info.Env());
  const auto kind = static_cast<Kind>(info[0].As<Napi::Number>().Int32Value());
  const Geometry g = readGeometry(info[1]);
  const Descs d = descs(g, false);
  const std::string name = kind == FORWARD ? forwardTrainingDesc(s, d).impl_info_str()
                     : kind == BACKWARD_DATA ? backwardDataDesc(s, d).impl_info_str()
                                             : backwardWeightsDesc(s, d).impl_info_str();
  return Napi::String::New(info.Env(), name);
}

}  // namespace

void initConvolution(Napi::Env env, Napi::Object exports) {
  exports.Set("conv", Napi::Function::New(env, conv));
  exports.Set("convImplementation", Napi::Function::New(env, convImplementation));
}

}  // namespace mpq
