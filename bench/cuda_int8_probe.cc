// cuda_int8_probe: times ResNet-50's convolutions (NHWC, batch N) through cuDNN's graph API
// (cudnn_graph.h) in FP16, in INT8 (x, w int8, INT32 accumulation, per-channel float scale,
// bias, ReLU, INT8 or FP16 output) and in FP8 (E4M3 x, w, FP16 output), weighted by how often
// each shape occurs in ResNet-50, and checks the INT8 / FP8 results against the FP16 graph on
// the same small-integer inputs (exact in every one of these types). Standalone
// (no kiln engine), for deciding whether an INT8 ResNet-50 can reach 2x torch.compile FP16.
//
// It also times cuDNN's LEGACY fused call, cudnnConvolutionBiasActivationForward (one scalar
// float scale alpha1 = mean of the per-channel scales, alpha2 = 0, float bias, ReLU), which
// may reach INT8 tensor-core (IMMA) kernels the graph API's heuristics do not propose:
//   - "x32": INT8x32_CONFIG: x [N, C/32, H, W, 32] and w [K, C/32, R, S, 32] int8
//     (CUDNN_TENSOR_NCHW_VECT_C + CUDNN_DATA_INT8x32), INT32 compute, y INT8x32;
//   - "nhwc8": INT8_CONFIG: x, w int8 NHWC / KRSC, INT32 compute, y int8 NHWC.
// Every algorithm x math type (default, tensor-op) x, for x32, filter reorder (inside each
// call: CUDNN_DEFAULT_REORDER, or once ahead with cudnnReorderFilterAndBias and
// CUDNN_NO_REORDER) is tried; each configuration that returns SUCCESS is checked against the
// FP16 graph's output * scale rounded and clamped to int8 (max abs diff, int8 units; <= 1 is
// right) and timed: one warm-up call, then 20 calls between CUDA events behind a GPU spin
// ("ev"), and the same 20 calls captured into a CUDA graph and replayed ("gr", no host cost);
// the column shows the replay time per call (the event time where capture fails) of the
// fastest configuration that is right. "fp16 gr" is the FP16 graph-API plan timed the same
// way (for an apples-to-apples ratio).
//
//   nvcc -O2 -std=c++17 -arch=sm_90 -c src/backends/cuda/kernels.cu -Isrc -o kernels.o
//   g++ -O2 -Wall -Wextra -std=c++20 bench/cuda_int8_probe.cc src/backends/cuda/cudnn_graph.cc
//       src/core/status.cc kernels.o -Iinclude -Isrc -I<cuda>/include -L<cuda>/lib64
//       -lcudnn -lcudart -o probe
//   ./probe [batch] [fast]      (fast: FP16, INT8 -> INT8 and the legacy columns only)
// (kernels.o: kiln::cuda::Spin, used by cudnn_graph.cc and here; scripts/gpu_suite.sh
// STAGES=probe builds and runs it this way.)
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_graph.h"
#include "backends/cuda/kernels.h"
#include "cuda_probe_util.h"

using kiln::StatusOr;
using kiln::cuda::FusedConvArgs;
using kiln::cuda::FusedConvPlan;
using kiln::cuda::FusedConvSpec;

namespace {

struct Shape {
  int c, k, hw, r, s;  // input channels, output channels, input H=W, kernel, stride
  int count;           // occurrences in ResNet-50 (torchvision v1.5)
};

// NHWC-ordered int8 [n][s][c] to NCHW_VECT_C with 32 lanes, [n][c/32][s][32]. For x
// (n = N, s = H*W) and for a KRSC filter (n = K, s = R*S), which gives the INT8x32 VECT_C
// filter [K][C/32][R][S][32]. c % 32 == 0.
void NhwcToVectC32(const int8_t* src, int64_t n, int64_t c, int64_t s, int8_t* dst) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j) {
      const int8_t* from = src + (i * s + j) * c;
      for (int64_t ch = 0; ch < c; ++ch)
        dst[((i * (c / 32) + ch / 32) * s + j) * 32 + ch % 32] = from[ch];
    }
}

// And back (y: [N][K/32][OH*OW][32] -> [N][OH*OW][K]).
void VectC32ToNhwc(const int8_t* src, int64_t n, int64_t c, int64_t s, int8_t* dst) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s; ++j) {
      int8_t* to = dst + (i * s + j) * c;
      for (int64_t ch = 0; ch < c; ++ch)
        to[ch] = src[((i * (c / 32) + ch / 32) * s + j) * 32 + ch % 32];
    }
}

constexpr int kAlgos = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
const char* const kAlgoNames[kAlgos] = {
    "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
    "WINOGRAD",      "WINOGRAD_NONFUSED"};
constexpr int kReps = 20;
constexpr double kSpinUs = 5000;  // longer than the host cost of enqueueing kReps calls

using Call = std::function<cudnnStatus_t()>;

// Mean device time per call (us) of kReps calls enqueued behind a GPU spin on `st`, so that
// their host cost is hidden as long as it stays below the spin; *host_us: the host time per
// enqueue. -1 when a call fails.
float EventUs(cudaStream_t st, cudaEvent_t e0, cudaEvent_t e1, const Call& call, float* host_us) {
  bool ok = kiln::cuda::Spin(kSpinUs, st) == cudaSuccess;
  ok = cudaEventRecord(e0, st) == cudaSuccess && ok;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kReps && ok; ++i) ok = call() == CUDNN_STATUS_SUCCESS;
  const auto t1 = std::chrono::steady_clock::now();
  *host_us = std::chrono::duration<float, std::micro>(t1 - t0).count() / kReps;
  ok = cudaEventRecord(e1, st) == cudaSuccess && ok;
  ok = cudaEventSynchronize(e1) == cudaSuccess && ok;
  float ms = 0;
  ok = ok && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
  cudaGetLastError();
  return ok ? ms * 1000.f / kReps : -1.f;
}

// The same kReps calls captured into a CUDA graph on `st` and replayed (after one warm-up
// replay): device time per call without any host cost. -1 when capture or replay fails.
float GraphUs(cudaStream_t st, cudaEvent_t e0, cudaEvent_t e1, const Call& call) {
  if (cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  bool ok = true;
  for (int i = 0; i < kReps && ok; ++i) ok = call() == CUDNN_STATUS_SUCCESS;
  cudaGraph_t g = nullptr;
  ok = cudaStreamEndCapture(st, &g) == cudaSuccess && ok && g != nullptr;
  cudaGraphExec_t ex = nullptr;
  ok = ok && cudaGraphInstantiate(&ex, g, 0) == cudaSuccess;
  ok = ok && cudaGraphLaunch(ex, st) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess;
  float ms = 0;
  if (ok) {
    ok = kiln::cuda::Spin(1000.0, st) == cudaSuccess && cudaEventRecord(e0, st) == cudaSuccess &&
         cudaGraphLaunch(ex, st) == cudaSuccess && cudaEventRecord(e1, st) == cudaSuccess &&
         cudaEventSynchronize(e1) == cudaSuccess &&
         cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
  }
  if (ex) cudaGraphExecDestroy(ex);
  if (g) cudaGraphDestroy(g);
  cudaStreamSynchronize(st);
  cudaGetLastError();
  return ok ? ms * 1000.f / kReps : -1.f;
}

// The descriptors of one legacy cudnnConvolutionBiasActivationForward.
using LegacyConv = kiln::cuda::LegacyConvDescs;

std::string Fail(const char* what, cudnnStatus_t s) {
  return std::string(what) + ": " + cudnnGetErrorString(s);
}

// Sets `d` up for x [n, c, hw, hw], w [k, c, r, r], stride, pad r/2, ReLU, float bias
// [1, k, 1, 1], INT32 compute; vect: INT8x32 NCHW_VECT_C x, w, y, else INT8 NHWC. Returns ""
// or the call that failed with its status.
std::string SetUpLegacy(LegacyConv* d, bool vect, int n, const Shape& sh, int oh) {
  const cudnnTensorFormat_t f = vect ? CUDNN_TENSOR_NCHW_VECT_C : CUDNN_TENSOR_NHWC;
  const cudnnDataType_t t = vect ? CUDNN_DATA_INT8x32 : CUDNN_DATA_INT8;
  cudnnStatus_t s;
  if ((s = cudnnCreateTensorDescriptor(&d->x)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateTensorDescriptor(&d->y)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateTensorDescriptor(&d->b)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateFilterDescriptor(&d->w)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateConvolutionDescriptor(&d->conv)) != CUDNN_STATUS_SUCCESS ||
      (s = cudnnCreateActivationDescriptor(&d->act)) != CUDNN_STATUS_SUCCESS)
    return Fail("cudnnCreate*Descriptor", s);
  if ((s = cudnnSetTensor4dDescriptor(d->x, f, t, n, sh.c, sh.hw, sh.hw)) != CUDNN_STATUS_SUCCESS)
    return Fail("x descriptor", s);
  if ((s = cudnnSetFilter4dDescriptor(d->w, t, f, sh.k, sh.c, sh.r, sh.r)) != CUDNN_STATUS_SUCCESS)
    return Fail("w descriptor", s);
  if ((s = cudnnSetTensor4dDescriptor(d->y, f, t, n, sh.k, oh, oh)) != CUDNN_STATUS_SUCCESS)
    return Fail("y descriptor", s);
  if ((s = cudnnSetTensor4dDescriptor(d->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, sh.k, 1, 1)) !=
      CUDNN_STATUS_SUCCESS)
    return Fail("bias descriptor", s);
  if ((s = cudnnSetConvolution2dDescriptor(d->conv, sh.r / 2, sh.r / 2, sh.s, sh.s, 1, 1,
                                           CUDNN_CROSS_CORRELATION, CUDNN_DATA_INT32)) !=
      CUDNN_STATUS_SUCCESS)
    return Fail("conv descriptor", s);
  if ((s = cudnnSetActivationDescriptor(d->act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN,
                                        0.0)) != CUDNN_STATUS_SUCCESS)
    return Fail("activation descriptor", s);
  int on = 0, oc = 0, ohh = 0, ow = 0;
  if ((s = cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &on, &oc, &ohh, &ow)) !=
      CUDNN_STATUS_SUCCESS)
    return Fail("cudnnGetConvolution2dForwardOutputDim", s);
  if (on != n || oc != sh.k || ohh != oh || ow != oh) return "output dims differ from the probe's";
  return "";
}

// Buffers of one legacy column (device pointers) and how to read its y back.
struct LegacyIO {
  const void* x = nullptr;
  const void* w = nullptr;
  const void* w_reordered = nullptr;  // null: no pre-reordered (CUDNN_NO_REORDER) tries
  const void* bias = nullptr;
  const void* bias_reordered = nullptr;
  void* y = nullptr;
  size_t ny = 0;
  bool vect = false;  // y is [N][K/32][OH*OW][32], else NHWC
  int64_t n = 0, k = 0, ohw = 0;
  float alpha = 1;
};

struct LegacyResult {
  float us = -1;  // the chosen configuration's time per call (graph replay, else events)
  int diff = -1;  // its max abs diff to the reference (int8 units); -1: no reference
  bool right = false;
  std::string what;  // the configuration and its timings, or why none ran
};

// Tries every algorithm x math type (x reorder mode) of cudnnConvolutionBiasActivationForward
// (y = relu(alpha * conv(x, w) + bias)) on `d` / `io`; checks each that runs against `ref`
// (NHWC; null: no check) and times it; returns the fastest right one (else the fastest).
LegacyResult RunLegacy(cudnnHandle_t h, cudaStream_t st, const LegacyConv& d, const LegacyIO& io,
                       const std::vector<int16_t>* ref) {
  LegacyResult res;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
    if (e0) cudaEventDestroy(e0);
    cudaGetLastError();
    res.what = "cudaEventCreate failed";
    return res;
  }
  struct Try {
    float us, ev, gr, host;
    int diff;
    std::string name;
  };
  std::vector<Try> tries;
  std::map<std::string, int> fails;
  std::vector<int8_t> got(io.ny), nhwc(io.vect ? io.ny : 0);
  const float alpha1 = io.alpha, alpha2 = 0.f;
  for (int pre = 0; pre < (io.w_reordered ? 2 : 1); ++pre)
    for (int tc = 0; tc < 2; ++tc)
      for (int a = 0; a < kAlgos; ++a) {
        const auto algo = static_cast<cudnnConvolutionFwdAlgo_t>(a);
        const std::string name = std::string(kAlgoNames[a]) +
                                 (tc ? "/tensor-op" : "/default-math") +
                                 (pre ? "/prereordered" : "");
        cudnnStatus_t s =
            cudnnSetConvolutionMathType(d.conv, tc ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH);
        if (s == CUDNN_STATUS_SUCCESS)
          s = cudnnSetConvolutionReorderType(d.conv,
                                             pre ? CUDNN_NO_REORDER : CUDNN_DEFAULT_REORDER);
        if (s != CUDNN_STATUS_SUCCESS) {
          ++fails[Fail("set math/reorder type", s)];
          continue;
        }
        size_t ws = 0;
        s = cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.conv, d.y, algo, &ws);
        if (s != CUDNN_STATUS_SUCCESS) {
          ++fails[Fail("workspace size", s)];
          continue;
        }
        if (ws > (size_t{1} << 31)) {
          ++fails["workspace > 2 GiB"];
          continue;
        }
        void* wsp = nullptr;
        if (ws > 0 && cudaMalloc(&wsp, ws) != cudaSuccess) {
          cudaGetLastError();
          ++fails["cudaMalloc(workspace) failed"];
          continue;
        }
        const void* w = pre ? io.w_reordered : io.w;
        const void* b = pre ? io.bias_reordered : io.bias;
        const Call call = [&]() {
          return cudnnConvolutionBiasActivationForward(h, &alpha1, d.x, io.x, d.w, w, d.conv, algo,
                                                       wsp, ws, &alpha2, d.y, io.y, d.b, b, d.act,
                                                       d.y, io.y);
        };
        // Warm-up and check: y poisoned with -128 first (ReLU's output is >= 0).
        cudaMemsetAsync(io.y, 0x80, io.ny, st);
        s = call();
        const cudaError_t ce = cudaStreamSynchronize(st);
        if (s != CUDNN_STATUS_SUCCESS || ce != cudaSuccess) {
          ++fails[s != CUDNN_STATUS_SUCCESS ? Fail("run", s)
                                            : std::string("run: ") + cudaGetErrorString(ce)];
          cudaGetLastError();
          if (wsp) cudaFree(wsp);
          continue;
        }
        int diff = -1;
        if (ref != nullptr &&
            cudaMemcpy(got.data(), io.y, io.ny, cudaMemcpyDeviceToHost) == cudaSuccess) {
          if (io.vect) VectC32ToNhwc(got.data(), io.n, io.k, io.ohw, nhwc.data());
          const std::vector<int8_t>& v = io.vect ? nhwc : got;
          diff = 0;
          for (size_t i = 0; i < io.ny; ++i)
            diff = std::max(diff, std::abs(static_cast<int>(v[i]) - static_cast<int>((*ref)[i])));
        }
        float host = -1;
        const float ev = EventUs(st, e0, e1, call, &host);
        const float gr = GraphUs(st, e0, e1, call);
        if (wsp) cudaFree(wsp);
        if (ev < 0 && gr < 0) {
          ++fails["timed runs failed"];
          continue;
        }
        tries.push_back({gr > 0 ? gr : ev, ev, gr, host, diff, name});
      }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaGetLastError();
  auto is_right = [&](const Try& t) { return ref == nullptr || (t.diff >= 0 && t.diff <= 1); };
  const Try* best = nullptr;
  int wrong = 0;
  for (const Try& t : tries) {
    wrong += !is_right(t);
    const bool better = best == nullptr || (is_right(t) && !is_right(*best)) ||
                        (is_right(t) == is_right(*best) && t.us < best->us);
    if (better) best = &t;
  }
  std::string why;
  for (const auto& [msg, count] : fails)
    why += (why.empty() ? "" : ", ") + msg + " x" + std::to_string(count);
  if (best == nullptr) {
    res.what = "none ran (" + why + ")";
    return res;
  }
  res.us = best->us;
  res.diff = best->diff;
  res.right = is_right(*best);
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "%s%s gr %.1f ev %.1f host %.1f us/call, diff %d; %zu ran, %d wrong",
                res.right ? "" : "WRONG ", best->name.c_str(), best->gr, best->ev, best->host,
                best->diff, tries.size(), wrong);
  res.what = buf;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 128;
  const bool fast = argc > 2 && std::string(argv[2]) == "fast";
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  const std::vector<Shape> shapes = {
      {64, 64, 56, 1, 1, 1},    {64, 64, 56, 3, 1, 3},     {64, 256, 56, 1, 1, 4},
      {256, 64, 56, 1, 1, 2},   {256, 128, 56, 1, 1, 1},   {128, 128, 56, 3, 2, 1},
      {128, 512, 28, 1, 1, 4},  {256, 512, 56, 1, 2, 1},   {512, 128, 28, 1, 1, 3},
      {128, 128, 28, 3, 1, 3},  {512, 256, 28, 1, 1, 1},   {256, 256, 28, 3, 2, 1},
      {256, 1024, 14, 1, 1, 6}, {512, 1024, 28, 1, 2, 1},  {1024, 256, 14, 1, 1, 5},
      {256, 256, 14, 3, 1, 5},  {1024, 512, 14, 1, 1, 1},  {512, 512, 14, 3, 2, 1},
      {512, 2048, 7, 1, 1, 3},  {1024, 2048, 14, 1, 2, 1}, {2048, 512, 7, 1, 1, 2},
      {512, 512, 7, 3, 1, 2}};
  cudnnHandle_t h;
  if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) return 1;
  // A blocking stream (ordered with the legacy default stream's cudaMemset / cudaMemcpy), so
  // that the plans and legacy calls can be captured into CUDA graphs.
  cudaStream_t st = nullptr;
  if (cudaStreamCreate(&st) != cudaSuccess || cudnnSetStream(h, st) != CUDNN_STATUS_SUCCESS) {
    std::fprintf(stderr, "cudaStreamCreate / cudnnSetStream failed\n");
    return 1;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> di(-8, 8);
  double tot16 = 0, tot8 = 0, tot8h = 0, totf8 = 0, tot16g = 0, tot32 = 0, totnh = 0;
  int n16g = 0, n32 = 0, nnh = 0;
  std::printf("%-24s %5s %8s %10s %11s %10s %8s %8s %10s %9s %8s %7s %8s %s\n",
              "shape (c>k hw r s)", "count", "fp16 us", "int8>i8 us", "int8>f16 us", "fp8>f16 us",
              "i8 relL2", "f8 relL2", "fp16 gr us", "x32 us", "nhwc8 us", "x32 dif", "nhwc dif",
              "engines fp16 | int8>i8 | int8>f16 | fp8>f16 | legacy x32 | legacy nhwc8");
  for (const Shape& sh : shapes) {
    const int oh = (sh.hw + 2 * (sh.r / 2) - sh.r) / sh.s + 1;
    FusedConvSpec sp;
    const int64_t x[4] = {n, sh.c, sh.hw, sh.hw}, w[4] = {sh.k, sh.c, sh.r, sh.r},
                  y[4] = {n, sh.k, oh, oh};
    for (int i = 0; i < 4; ++i) {
      sp.x[i] = x[i];
      sp.w[i] = w[i];
      sp.y[i] = y[i];
    }
    sp.pad[0] = sp.pad[1] = sh.r / 2;
    sp.stride[0] = sp.stride[1] = sh.s;
    sp.relu = true;
    const size_t nx = static_cast<size_t>(n) * sh.c * sh.hw * sh.hw;
    const size_t nw = static_cast<size_t>(sh.k) * sh.c * sh.r * sh.r;
    const size_t ny = static_cast<size_t>(n) * sh.k * oh * oh;
    // Integer-valued inputs, exact in both FP16 and INT8.
    std::vector<int8_t> hx(nx), hw(nw);
    for (auto& v : hx) v = static_cast<int8_t>(di(rng));
    for (auto& v : hw) v = static_cast<int8_t>(di(rng));
    std::vector<__half> hx16(nx), hw16(nw), hb16(sh.k);
    std::vector<__nv_fp8_e4m3> hxf8(nx), hwf8(nw);
    for (size_t i = 0; i < nx; ++i) {
      hx16[i] = __float2half(hx[i]);
      hxf8[i] = __nv_fp8_e4m3(static_cast<float>(hx[i]));
    }
    for (size_t i = 0; i < nw; ++i) {
      hw16[i] = __float2half(hw[i]);
      hwf8[i] = __nv_fp8_e4m3(static_cast<float>(hw[i]));
    }
    std::vector<float> scale(sh.k), biasf(sh.k);
    std::uniform_real_distribution<float> du(0.5f, 1.5f), db(-50.f, 50.f);
    // Output scale so the INT8 result spans about +-100 (FP16 reference divided the same way).
    const float base = 1.f / (8.f * 8.f * std::sqrt(static_cast<float>(sh.c * sh.r * sh.r)));
    for (int k = 0; k < sh.k; ++k) {
      scale[k] = base * 40.f * du(rng);
      biasf[k] = db(rng) * 0.1f;
      hb16[k] = __float2half(biasf[k] / scale[k]);
    }
    void* dx8 = ProbeAlloc(nx);
    void* dw8 = ProbeAlloc(nw);
    void* dx16 = ProbeAlloc(nx * 2);
    void* dw16 = ProbeAlloc(nw * 2);
    void* db16 = ProbeAlloc(sh.k * 2);
    void* dsc = ProbeAlloc(sh.k * 4);
    void* dbf = ProbeAlloc(sh.k * 4);
    void* dy8 = ProbeAlloc(ny);
    void* dy16 = ProbeAlloc(ny * 2);
    void* dyh = ProbeAlloc(ny * 2);
    void* dxf8 = ProbeAlloc(nx);
    void* dwf8 = ProbeAlloc(nw);
    void* dyf8 = ProbeAlloc(ny * 2);
    cudaMemcpy(dxf8, hxf8.data(), nx, cudaMemcpyHostToDevice);
    cudaMemcpy(dwf8, hwf8.data(), nw, cudaMemcpyHostToDevice);
    cudaMemcpy(dx8, hx.data(), nx, cudaMemcpyHostToDevice);
    cudaMemcpy(dw8, hw.data(), nw, cudaMemcpyHostToDevice);
    cudaMemcpy(dx16, hx16.data(), nx * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dw16, hw16.data(), nw * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(db16, hb16.data(), sh.k * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dsc, scale.data(), sh.k * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dbf, biasf.data(), sh.k * 4, cudaMemcpyHostToDevice);
    char name[64];
    std::snprintf(name, sizeof(name), "%d>%d %d %dx%d s%d", sh.c, sh.k, sh.hw, sh.r, sh.r, sh.s);
    // FP16: y16 = relu(conv + bias/scale) (unscaled, so y16 * scale is the reference).
    FusedConvArgs a16;
    a16.x = dx16;
    a16.w = dw16;
    a16.bias = db16;
    a16.y = dy16;
    auto p16 = FusedConvPlan::Create(h, sp, int64_t{1} << 30, a16, 3, name);
    // INT8 -> INT8 and INT8 -> FP16: y = relu(conv * scale + bias).
    FusedConvSpec s8 = sp;
    s8.x_type = CUDNN_DATA_INT8;
    s8.compute = CUDNN_DATA_INT32;
    s8.scale = true;
    s8.bias_type = CUDNN_DATA_FLOAT;
    s8.y_type = CUDNN_DATA_INT8;
    FusedConvArgs a8;
    a8.x = dx8;
    a8.w = dw8;
    a8.scale = dsc;
    a8.bias = dbf;
    a8.y = dy8;
    auto p8 = FusedConvPlan::Create(h, s8, int64_t{1} << 30, a8, 8, name);
    FusedConvSpec s8h = s8;
    s8h.y_type = CUDNN_DATA_HALF;
    FusedConvArgs a8h = a8;
    a8h.y = dyh;
    StatusOr<std::unique_ptr<FusedConvPlan>> p8h = kiln::NotFound("skipped (fast)");
    if (!fast) p8h = FusedConvPlan::Create(h, s8h, int64_t{1} << 30, a8h, 8, name);
    FusedConvSpec sf8 = s8h;
    sf8.x_type = CUDNN_DATA_FP8_E4M3;
    sf8.compute = CUDNN_DATA_FLOAT;
    FusedConvArgs af8 = a8h;
    af8.x = dxf8;
    af8.w = dwf8;
    af8.y = dyf8;
    StatusOr<std::unique_ptr<FusedConvPlan>> pf8 = kiln::NotFound("skipped (fast)");
    if (!fast) pf8 = FusedConvPlan::Create(h, sf8, int64_t{1} << 30, af8, 8, name);
    // rel. L2 of a low-precision result (FP16 out, y = relu(conv * scale + bias)) against the
    // FP16 graph's (relu(conv + bias / scale)) times scale; poisoned output first.
    auto check = [&](const FusedConvPlan& p, FusedConvArgs a, void* out) -> double {
      if (!p16.ok()) return -1;
      void* ws = ProbeAlloc(static_cast<size_t>(
          std::max<int64_t>({(*p16)->workspace_bytes(), p.workspace_bytes(), int64_t{256}})));
      FusedConvArgs r = a16;
      r.workspace = a.workspace = ws;
      cudaMemset(out, 0xff, ny * 2);
      (void)(*p16)->Run(h, r);
      (void)p.Run(h, a);
      cudaDeviceSynchronize();
      std::vector<__half> r16(ny), r8(ny);
      cudaMemcpy(r16.data(), dy16, ny * 2, cudaMemcpyDeviceToHost);
      cudaMemcpy(r8.data(), out, ny * 2, cudaMemcpyDeviceToHost);
      cudaFree(ws);
      double num = 0, den = 0;
      for (size_t i = 0; i < ny; ++i) {
        const int k = static_cast<int>(i % sh.k);
        const double ref = static_cast<double>(__half2float(r16[i])) * scale[k];
        const double got = __half2float(r8[i]);
        if (!std::isfinite(got)) return 1e9;
        num += (got - ref) * (got - ref);
        den += ref * ref;
      }
      return den > 0 ? std::sqrt(num / den) : -1;
    };
    const double rel = p8h.ok() ? check(**p8h, a8h, dyh) : -1;
    const double relf8 = pf8.ok() ? check(**pf8, af8, dyf8) : -1;
    const float t16 = p16.ok() ? (*p16)->trial_us() : -1, t8 = p8.ok() ? (*p8)->trial_us() : -1,
                t8h = p8h.ok() ? (*p8h)->trial_us() : -1, tf8 = pf8.ok() ? (*pf8)->trial_us() : -1;
    // ---- Legacy cudnnConvolutionBiasActivationForward, INT8x32 and NHWC INT8 -> INT8 ----
    // One scalar scale (alpha1 is a scalar); the bias is the FP16 graph's (bias / scale, in
    // FP16) times it, so that the reference is the FP16 graph's output times that scale.
    float s_mean = 0;
    for (float v : scale) s_mean += v;
    s_mean /= static_cast<float>(sh.k);
    std::vector<float> lbias(sh.k);
    for (int k = 0; k < sh.k; ++k) lbias[k] = s_mean * __half2float(hb16[k]);
    // The reference, NHWC: round(clamp(y16 * s_mean, -128, 127)); 1000 where y16 is not finite.
    std::vector<int16_t> ref;
    float t16g = -1;
    if (p16.ok()) {
      void* ws = ProbeAlloc(static_cast<size_t>(std::max<int64_t>((*p16)->workspace_bytes(), 256)));
      FusedConvArgs r = a16;
      r.workspace = ws;
      std::vector<__half> r16(ny);
      if ((*p16)->Run(h, r).ok() && cudaStreamSynchronize(st) == cudaSuccess &&
          cudaMemcpy(r16.data(), dy16, ny * 2, cudaMemcpyDeviceToHost) == cudaSuccess) {
        ref.resize(ny);
        for (size_t i = 0; i < ny; ++i) {
          const double v = static_cast<double>(__half2float(r16[i])) * s_mean;
          ref[i] = std::isfinite(v)
                       ? static_cast<int16_t>(std::nearbyint(std::clamp(v, -128.0, 127.0)))
                       : int16_t{1000};
        }
      }
      cudaGetLastError();
      // The FP16 plan timed like the legacy calls (CUDA-graph replay).
      cudaEvent_t e0 = nullptr, e1 = nullptr;
      if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess)
        t16g = GraphUs(st, e0, e1, [&]() {
          return (*p16)->Run(h, r).ok() ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
        });
      if (e0) cudaEventDestroy(e0);
      if (e1) cudaEventDestroy(e1);
      cudaGetLastError();
      cudaFree(ws);
    }
    const std::vector<int16_t>* refp = ref.empty() ? nullptr : &ref;
    void* dlb = ProbeAlloc(sh.k * 4);
    void* dlbr = ProbeAlloc(sh.k * 4);
    void* dyn = ProbeAlloc(ny);
    cudaMemcpy(dlb, lbias.data(), sh.k * 4, cudaMemcpyHostToDevice);
    LegacyResult r32, rnh;
    // The legacy call's buffers (x, w, y; `vect`: the INT8x32 layout) and the shared rest.
    auto legacy_io = [&](const void* x, const void* w, void* y, bool vect) {
      LegacyIO io;
      io.x = x;
      io.w = w;
      io.bias = dlb;
      io.y = y;
      io.ny = ny;
      io.vect = vect;
      io.n = n;
      io.k = sh.k;
      io.ohw = static_cast<int64_t>(oh) * oh;
      io.alpha = s_mean;
      return io;
    };
    if (sh.c % 32 != 0 || sh.k % 32 != 0) {
      r32.what = "skipped: C or K not a multiple of 32";
    } else {
      std::vector<int8_t> hx32(nx), hw32(nw);
      NhwcToVectC32(hx.data(), n, sh.c, static_cast<int64_t>(sh.hw) * sh.hw, hx32.data());
      NhwcToVectC32(hw.data(), sh.k, sh.c, static_cast<int64_t>(sh.r) * sh.r, hw32.data());
      void* dx32 = ProbeAlloc(nx);
      void* dw32 = ProbeAlloc(nw);
      void* dw32r = ProbeAlloc(nw);
      void* dy32 = ProbeAlloc(ny);
      cudaMemcpy(dx32, hx32.data(), nx, cudaMemcpyHostToDevice);
      cudaMemcpy(dw32, hw32.data(), nw, cudaMemcpyHostToDevice);
      LegacyConv d;
      const std::string err = SetUpLegacy(&d, true, n, sh, oh);
      if (!err.empty()) {
        r32.what = err;
      } else {
        LegacyIO io = legacy_io(dx32, dw32, dy32, true);
        // Filter and bias permuted once for the IMMA kernels (then run with CUDNN_NO_REORDER).
        const cudnnStatus_t rs =
            cudnnReorderFilterAndBias(h, d.w, CUDNN_DEFAULT_REORDER, dw32, dw32r, 1, dlb, dlbr);
        if (rs == CUDNN_STATUS_SUCCESS && cudaStreamSynchronize(st) == cudaSuccess) {
          io.w_reordered = dw32r;
          io.bias_reordered = dlbr;
        }
        cudaGetLastError();
        r32 = RunLegacy(h, st, d, io, refp);
        if (rs != CUDNN_STATUS_SUCCESS) r32.what += "; " + Fail("cudnnReorderFilterAndBias", rs);
      }
      for (void* p : {dx32, dw32, dw32r, dy32}) cudaFree(p);
    }
    {
      LegacyConv d;
      const std::string err = SetUpLegacy(&d, false, n, sh, oh);
      if (!err.empty()) {
        rnh.what = err;
      } else {
        LegacyIO io = legacy_io(dx8, dw8, dyn, false);
        rnh = RunLegacy(h, st, d, io, refp);
      }
    }
    for (void* p : {dlb, dlbr, dyn}) cudaFree(p);
    auto eng = [](const auto& p) {
      return p.ok() ? p.value()->engine_name() : p.status().message().substr(0, 160);
    };
    std::printf(
        "%-24s %5d %8.1f %10.1f %11.1f %10.1f %8.1e %8.1e %10.1f %9.1f %8.1f %7d %8d %s | %s | %s "
        "| "
        "%s | %s | %s\n",
        name, sh.count, t16, t8, t8h, tf8, rel, relf8, t16g, r32.us, rnh.us, r32.diff, rnh.diff,
        eng(p16).c_str(), eng(p8).c_str(), eng(p8h).c_str(), eng(pf8).c_str(), r32.what.c_str(),
        rnh.what.c_str());
    std::fflush(stdout);
    if (t16 > 0) tot16 += t16 * sh.count;
    if (t8 > 0) tot8 += t8 * sh.count;
    if (t8h > 0) tot8h += t8h * sh.count;
    if (tf8 > 0) totf8 += tf8 * sh.count;
    if (t16g > 0) tot16g += t16g * sh.count, ++n16g;
    // Legacy totals: only configurations that matched the reference.
    if (r32.us > 0 && r32.right) tot32 += r32.us * sh.count, ++n32;
    if (rnh.us > 0 && rnh.right) totnh += rnh.us * sh.count, ++nnh;
    for (void* p : {dx8, dw8, dx16, dw16, db16, dsc, dbf, dy8, dy16, dyh, dxf8, dwf8, dyf8})
      cudaFree(p);
  }
  const int ns = static_cast<int>(shapes.size());
  std::printf(
      "ResNet-50 conv total (batch %d, shape x count, stem excluded): fp16 %.3f ms, "
      "int8->int8 %.3f ms, int8->fp16 %.3f ms, fp8->fp16 %.3f ms, fp16 graph-replay %.3f ms "
      "(%d/%d shapes), legacy int8x32 %.3f ms (%d/%d shapes right), legacy nhwc int8->int8 "
      "%.3f ms (%d/%d shapes right); fp16 / int8x32 %.2fx (graph-replay fp16 / int8x32 %.2fx), "
      "fp16 / nhwc int8 %.2fx\n",
      n, tot16 / 1000, tot8 / 1000, tot8h / 1000, totf8 / 1000, tot16g / 1000, n16g, ns,
      tot32 / 1000, n32, ns, totnh / 1000, nnh, ns, tot32 > 0 ? tot16 / tot32 : 0.0,
      tot32 > 0 ? tot16g / tot32 : 0.0, totnh > 0 ? tot16 / totnh : 0.0);
  cudnnDestroy(h);
  cudaStreamDestroy(st);
  return 0;
}
