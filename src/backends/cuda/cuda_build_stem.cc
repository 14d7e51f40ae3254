// Builder::StemConvPool of the CUDA engine (cuda_internal.h): an image stem, i.e. a convolution
// over a float32 engine input of 1-4 channels (with its bias and ReLU) whose only reader is a
// max pool, built as one step of kiln's fused stem kernel (stem_conv.h). The step reads the
// engine's float32 NCHW input as it was staged, so the image is never converted to FP16 NHWC on
// its own, and the convolution's output, 4x the size of the pool's, never leaves shared memory.
// In an INT8 build whose pool output has a range and feeds only INT8 convolutions, the step
// writes that output int8, as the max pool would have. FP16 engines only (FP16 and INT8
// precision): the kernel's tensor-core math is FP16 with float32 sums.
// KILN_CUDA_STEM=0 builds the two layers on their own (cuDNN's convolution, kiln's max pool).
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cuda/cuda_internal.h"
#include "backends/cuda/stem_conv.h"

namespace kiln::cuda::internal {

StatusOr<bool> Builder::StemConvPool(const Dims& x, const Dims& wd, bool relu, size_t pos) {
  const char* env = std::getenv("KILN_CUDA_STEM");
  if (env != nullptr && std::string(env) == "0") return false;
  const Layer& l = L();
  const int xt = l.inputs[0], yt = l.outputs[0];
  if (dt() != DType::kF16 || pos != l.post_ops.size() || !l.Ints("split").empty() ||
      l.Int("group", 1) != 1 || x.size() != 4 || wd.size() != 4) {
    return false;
  }
  // The input: an engine input that no layer has read yet (still its float32 staging buffer).
  if (ts_[xt].buf >= 0 || ts_[xt].stage < 0 || ts_[xt].q_buf >= 0) return false;
  const Dims st = l.Ints("strides"), dl = l.Ints("dilations"), pb = l.Ints("pads_begin"),
             pe = l.Ints("pads_end");
  if (st.size() != 2 || st[0] != st[1] || dl != Dims{1, 1} || pb.size() != 2 || pb[0] != pb[1] ||
      pb != pe) {
    return false;
  }
  int bias_t = -1;
  if (l.inputs.size() > 2 && l.inputs[2] >= 0) {
    bias_t = l.inputs[2];
    const auto& bt = p_.tensors[bias_t];
    if (!bt.is_const || bt.value.dtype() != DataType::kFloat32 ||
        bt.value.num_elements() != wd[0]) {
      return false;
    }
  }
  const Tensor& wv = p_.tensors[l.inputs[1]].value;
  if (wv.dtype() != DataType::kFloat32) return false;
  // The reader: a max pool, square, symmetric, undilated.
  const int pool_out = MaxPoolReaderOf(yt);
  if (pool_out < 0) return false;
  int pj = -1;
  for (size_t j = static_cast<size_t>(layer_) + 1; j < p_.layers.size() && pj < 0; ++j) {
    const Layer& c = p_.layers[j];
    if (!c.dead && c.kind == LayerKind::kPool && !c.inputs.empty() && c.inputs[0] == yt &&
        c.outputs.size() == 1 && c.outputs[0] == pool_out) {
      pj = static_cast<int>(j);
    }
  }
  if (pj < 0) return false;
  const Layer& pl = p_.layers[pj];
  const Dims pk = pl.Ints("kernel"), ps = pl.Ints("strides"), ppb = pl.Ints("pads_begin"),
             ppe = pl.Ints("pads_end");
  Dims pdl = pl.Ints("dilations");
  if (pdl.empty()) pdl = {1, 1};
  if (pk.size() != 2 || pk[0] != pk[1] || ps.size() != 2 || ps[0] != ps[1] || ppb.size() != 2 ||
      ppb[0] != ppb[1] || ppb != ppe || pdl != Dims{1, 1}) {
    return false;
  }
  const Dims& y = dims_[yt];
  const Dims& py = dims_[pool_out];
  StemConvShape g;
  g.n = x[0];
  g.c = x[1];
  g.h = x[2];
  g.w = x[3];
  g.k = wd[0];
  g.r = static_cast<int>(wd[2]);
  g.s = static_cast<int>(wd[3]);
  g.stride = static_cast<int>(st[0]);
  g.pad = static_cast<int>(pb[0]);
  g.oh = y[2];
  g.ow = y[3];
  g.pk = static_cast<int>(pk[0]);
  g.ps = static_cast<int>(ps[0]);
  g.pp = static_cast<int>(ppb[0]);
  g.ph = py[2];
  g.pw = py[3];
  if (wd[1] != g.c || y[0] != g.n || y[1] != g.k || py != Dims{g.n, g.k, g.ph, g.pw} ||
      !StemConvSupported(g)) {
    return false;
  }

  // Packed FP16 weights and a float32 bias, shared by the engine's instances.
  const std::string wkey = std::to_string(l.inputs[1]) + ":stem" + std::to_string(g.stride);
  const std::string bkey = std::to_string(bias_t) + ":f32";
  std::shared_ptr<void> wdev, bdev;
  {
    std::lock_guard<std::mutex> lock(sh_->mu);
    auto c = sh_->consts.find(wkey);
    if (c != sh_->consts.end()) wdev = c->second;
    c = sh_->consts.find(bkey);
    if (bias_t >= 0 && c != sh_->consts.end()) bdev = c->second;
  }
  if (!wdev) {
    const std::vector<uint16_t> packed = PackStemConvWeights(g, wv.data<float>());
    KILN_ASSIGN_OR_RETURN(wdev, UploadBytes(packed.data(), packed.size() * 2));
    std::lock_guard<std::mutex> lock(sh_->mu);
    sh_->consts[wkey] = wdev;
  }
  if (bias_t >= 0 && !bdev) {
    const Tensor& bv = p_.tensors[bias_t].value;
    KILN_ASSIGN_OR_RETURN(bdev, UploadBytes(bv.data<float>(), g.k * 4));
    std::lock_guard<std::mutex> lock(sh_->mu);
    sh_->consts[bkey] = bdev;
  }
  out_->keep.push_back(wdev);
  if (bdev) out_->keep.push_back(bdev);

  // INT8 builds: the pool's output int8 when its readers are INT8 convolutions (as MaxPool).
  const TensorRange* range = RangeOf(pool_out);
  const bool out8 = range != nullptr && OnlyInt8Readers(pool_out);
  const float scale = out8 ? 127.f / range->amax : 1.f;
  const int sb = ts_[xt].stage;
  const int yb = NewBuf(static_cast<size_t>(Elements(py)) * (out8 ? 1 : SizeOf(dt())));
  StemConvArgs a;
  a.g = g;
  a.w = static_cast<const uint16_t*>(wdev.get());
  a.bias = static_cast<const float*>(bdev.get());
  a.relu = relu;
  a.out_int8 = out8;
  a.scale = scale;
  AddStep([=](const RunCtx& r) {
    StemConvArgs run = a;
    run.x = static_cast<const float*>(r.P(sb));
    run.y = r.P(yb);
    return CudaStatus(StemConv(run, r.c->stream), "stem convolution + max pool");
  });
  const std::string geom = std::to_string(g.r) + "x" + std::to_string(g.s) + "/" +
                           std::to_string(g.stride) + (relu ? " + relu" : "") + ", " +
                           std::to_string(g.pk) + "x" + std::to_string(g.pk) + "/" +
                           std::to_string(g.ps) + " max pool";
  out_->impl[layer_] = "kiln:stem(" + geom + (out8 ? ", ->int8" : "") + ")";
  out_->impl[pj] = "kiln:stem (fused into '" + (l.nodes.empty() ? l.op : l.nodes.front()) + "')";
  fused_into_[pj] = layer_;
  if (out8) {
    out_->prec[pj] = "INT8";
    ts_[pool_out].q_buf = yb;
    ts_[pool_out].q_scale = scale;
    ts_[pool_out].nhwc = true;
    Use(yb);
  } else {
    Define(pool_out, yb, true);
  }
  return true;
}

}  // namespace kiln::cuda::internal
