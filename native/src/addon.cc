// mpq's optional native kernels: oneDNN convolutions, matmul and batch norm, and the fused LSQ
// fake quantization, run on tensors in the wasm backend's memory (src/train/backend/native.ts).
#include <omp.h>

#include "common.h"

namespace mpq {

uint8_t *heapBase(const Napi::Value &heap) {
  if (!heap.IsTypedArray()) throw Napi::TypeError::New(heap.Env(), "mpq native: the heap must be a typed array");
  return static_cast<uint8_t *>(heap.As<Napi::Uint8Array>().Data());
}

State &state(const Napi::Env &env) { return *env.GetInstanceData<State>(); }

namespace {

// Threads of oneDNN's OpenMP pool for calls from this JS thread (OpenMP keeps one count per thread).
void setThreads(const Napi::CallbackInfo &info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "mpq native: threads must be >= 1");
  omp_set_num_threads(n);
}

Napi::Value getThreads(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), omp_get_max_threads()); }

Napi::Value version(const Napi::CallbackInfo &info) {
  const dnnl_version_t *v = dnnl_version();
  auto out = Napi::Object::New(info.Env());
  out.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  out.Set("cpuRuntime", v->cpu_runtime == DNNL_RUNTIME_OMP ? "openmp" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "tbb" : "other");
  return out;
}

}  // namespace

Napi::Object initAddon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new State());
  exports.Set("setThreads", Napi::Function::New(env, setThreads));
  exports.Set("getThreads", Napi::Function::New(env, getThreads));
  exports.Set("version", Napi::Function::New(env, version));
  initConvolution(env, exports);
  initMatmul(env, exports);
  initBatchNorm(env, exports);
  initFakeQuant(env, exports);
  initElementwise(env, exports);
  initLayout(env, exports);
  return exports;
}

}  // namespace mpq

Napi::Object Init(Napi::Env env, Napi::Object exports) { return mpq::initAddon(env, exports); }

NODE_API_MODULE(mpq_dnnl, Init)
