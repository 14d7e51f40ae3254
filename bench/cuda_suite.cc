// kiln_cuda_suite: converts one model for the CUDA backend and reports, on one line, what
// converted, end-to-end correctness against the reference kernels, and device timings.
//
//   kiln_cuda_suite --model bench/models/resnet50.onnx --input input --dims 3,224,224
//       --precision fp16 --batch 128 [--check-batch 2] [--iters 50] [--int-high 30522]
//       [--label resnet50] [--tsv results.tsv] [--calib 2]
//
// INT8 / FP8: the model is calibrated in the same call (one-call form, calibration_feeds) on
// --calib random batch-1 inputs, which is enough to time it (quality: docs/int8.md), and the
// engines timed below get the same ranges.
//
// Timings: each engine of the converted model is rebuilt from its segment and timed with
// CudaEngine::TimeDevice (CUDA events around the device steps; inputs already on the GPU, as
// PyTorch's numbers are), with and without CUDA-graph replay; "host" is Session::Run of the
// converted model (host input -> host output, native nodes included), "resident" the same
// with the input on the GPU and the output left there. Correctness: the
// converted model vs the unconverted one (reference kernels) on the same random input at
// --check-batch, rel. L2 of every output.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/lowering.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_engine.h"
#include "convert/engine_op_def.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "runtime/calibration_flow.h"

namespace kiln {
namespace {

struct Args {
  std::string model, input, label, tsv, profile, precision = "fp16";
  std::vector<int64_t> dims;
  int64_t batch = 1, check_batch = 2, int_high = 0;
  int iters = 50, calib = 2;
};

Tensor RandomInput(const Args& a, int64_t batch, uint32_t seed) {
  std::vector<int64_t> d = {batch};
  d.insert(d.end(), a.dims.begin(), a.dims.end());
  std::mt19937 rng(seed);
  if (a.int_high > 0) {
    Tensor t = Tensor::Empty(DataType::kInt64, d);
    std::uniform_int_distribution<int64_t> dist(0, a.int_high - 1);
    for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<int64_t>()[i] = dist(rng);
    return t;
  }
  Tensor t = Tensor::Empty(DataType::kFloat32, d);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = dist(rng);
  return t;
}

double RelL2(const Tensor& got, const Tensor& want) {
  if (got.dims() != want.dims() || got.dtype() != DataType::kFloat32) return INFINITY;
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const double x = got.data<float>()[i], y = want.data<float>()[i];
    if (std::isnan(x) || std::isnan(y)) return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den == 0 ? INFINITY : std::sqrt(num / den);
}

std::vector<int64_t> ParseDims(const std::string& s) {
  std::vector<int64_t> d;
  size_t at = 0;
  while (at <= s.size()) {
    size_t c = s.find(',', at);
    if (c == std::string::npos) c = s.size();
    if (c > at) d.push_back(std::stoll(s.substr(at, c - at)));
    at = c + 1;
  }
  return d;
}

int Run(const Args& a) {
  using Clock = std::chrono::steady_clock;
  ConversionParams params;
  params.backend = "cuda";
  params.precision_mode = a.precision;
  params.max_batch_size = a.batch;
  std::vector<int64_t> shape = {-1};
  shape.insert(shape.end(), a.dims.begin(), a.dims.end());
  params.input_shapes[a.input] = shape;
  StatusOr<Precision> prec = ParsePrecision(a.precision);
  if (!prec.ok()) {
    std::fprintf(stderr, "%s: %s\n", a.label.c_str(), prec.status().ToString().c_str());
    return 2;
  }
  if (*prec == Precision::kINT8 || *prec == Precision::kFP8) {
    params.use_calibration = true;
    for (int i = 0; i < a.calib; ++i) {
      params.calibration_feeds.push_back({{a.input, RandomInput(a, 1, 100 + i)}});
    }
  }
  const auto t0 = Clock::now();
  StatusOr<ConvertedModel> conv = CreateInferenceGraph(a.model, params);
  if (!conv.ok()) {
    std::fprintf(stderr, "%s: convert: %s\n", a.label.c_str(), conv.status().ToString().c_str());
    return 1;
  }
  const double convert_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const ConversionSummary& sum = conv->summary();
  int built = 0;
  for (const EngineSummary& e : sum.engines) built += e.status == "built" ? 1 : 0;
  std::fprintf(stderr, "%s\n", sum.ToString().c_str());

  // End-to-end correctness at check_batch.
  double worst = 0;
  {
    StatusOr<std::unique_ptr<Session>> ref = Session::Load(a.model);
    StatusOr<std::unique_ptr<Session>> got = Session::FromGraph(conv->graph());
    if (!ref.ok() || !got.ok()) {
      std::fprintf(stderr, "%s: session: %s %s\n", a.label.c_str(), ref.status().ToString().c_str(),
                   got.status().ToString().c_str());
      return 1;
    }
    Tensor x = RandomInput(a, a.check_batch, 7);
    auto want = (*ref)->Run({{a.input, x}});
    auto have = (*got)->Run({{a.input, x}});
    if (!want.ok() || !have.ok()) {
      std::fprintf(stderr, "%s: run: %s %s\n", a.label.c_str(), want.status().ToString().c_str(),
                   have.status().ToString().c_str());
      return 1;
    }
    for (size_t i = 0; i < want->size(); ++i)
      worst = std::max(worst, RelL2((*have)[i], (*want)[i]));
  }

  // Host-to-host time of the converted model at the full batch (median of a few runs).
  double host_ms = 0;
  {
    StatusOr<std::unique_ptr<Session>> s = Session::FromGraph(conv->graph());
    Tensor x = RandomInput(a, a.batch, 11);
    std::vector<double> ms;
    for (int i = 0; i < 3 + std::min(a.iters, 10); ++i) {
      const auto t1 = Clock::now();
      auto r = (*s)->Run({{a.input, x}});
      if (!r.ok()) {
        std::fprintf(stderr, "%s: run: %s\n", a.label.c_str(), r.status().ToString().c_str());
        return 1;
      }
      if (i >= 3)
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
    }
    std::sort(ms.begin(), ms.end());
    host_ms = ms[ms.size() / 2];
  }
  // The same with the input already on the GPU and the output left there (RunOptions::
  // outputs_on_device): what a GPU pipeline feeding kiln sees.
  double resident_ms = 0;
  {
    StatusOr<std::unique_ptr<Session>> s = Session::FromGraph(conv->graph());
    StatusOr<Tensor> x = RandomInput(a, a.batch, 11).ToDevice(0);
    if (!s.ok() || !x.ok()) {
      std::fprintf(stderr, "%s: device input: %s\n", a.label.c_str(),
                   (s.ok() ? x.status() : s.status()).ToString().c_str());
      return 1;
    }
    RunOptions on_device;
    on_device.outputs_on_device = true;
    std::vector<double> ms;
    for (int i = 0; i < 3 + std::min(a.iters, 10); ++i) {
      const auto t1 = Clock::now();
      auto r = (*s)->Run({{a.input, *x}}, {}, on_device);
      if (!r.ok()) {
        std::fprintf(stderr, "%s: resident run: %s\n", a.label.c_str(),
                     r.status().ToString().c_str());
        return 1;
      }
      if (i >= 3)
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
    }
    std::sort(ms.begin(), ms.end());
    resident_ms = ms[ms.size() / 2];
  }

  // Device time of every engine at the full batch.
  double dev_ms = 0, dev_graph_ms = 0;
  std::string layers;
  for (const Node& n : conv->graph().nodes) {
    if (n.domain != kEngineOpDomain || n.op_type != kEngineOpType) continue;
    const Graph& seg = *conv->graph().functions.at(n.attrs.at("segment_func").s);
    BuildConfig cfg;
    cfg.precision = *prec;
    cfg.max_batch_size = a.batch;
    auto cd = n.attrs.find("calibration_data");
    if (cd != n.attrs.end()) {
      std::string id;
      Status st = ApplyCalibrationData(cd->second.s, n.name, &cfg, &id);
      if (!st.ok()) {
        std::fprintf(stderr, "%s: %s\n", a.label.c_str(), st.ToString().c_str());
        return 1;
      }
    }
    for (const std::string& st : n.attrs.at("input_shapes").strings) {
      StatusOr<Shape> sh = ParseShapeAttr(st);
      std::vector<int64_t> d = sh->dims();
      for (int64_t& v : d) v = v < 0 ? a.batch : v;
      cfg.input_shapes.push_back(d);
    }
    const char* tf = std::getenv("KILN_CUDA_TF32");
    auto e = cuda::BuildCudaEngine(seg, cfg, 0, tf == nullptr || std::string(tf) != "0");
    if (!e.ok()) {
      std::fprintf(stderr, "%s: engine: %s\n", a.label.c_str(), e.status().ToString().c_str());
      continue;
    }
    std::vector<Tensor> in;
    std::vector<const Tensor*> ptrs;
    uint32_t seed = 21;
    for (size_t k = 0; k < cfg.input_shapes.size(); ++k) {
      const auto& d = cfg.input_shapes[k];
      const ValueInfo* vi = seg.FindValueInfo(seg.inputs[k]);
      std::mt19937 rng(seed++);
      if (vi != nullptr && vi->dtype == DataType::kInt64) {  // token ids (embedding lookup)
        Tensor t = Tensor::Empty(DataType::kInt64, d);
        std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(a.int_high, 1) - 1);
        for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<int64_t>()[i] = dist(rng);
        in.push_back(std::move(t));
        continue;
      }
      Tensor t = Tensor::Empty(DataType::kFloat32, d);
      std::uniform_real_distribution<float> dist(-1.f, 1.f);
      for (int64_t i = 0; i < t.num_elements(); ++i) t.mutable_data<float>()[i] = dist(rng);
      in.push_back(std::move(t));
    }
    for (const Tensor& t : in) ptrs.push_back(&t);
    auto plain = (*e)->TimeDevice(ptrs, 5, a.iters, false);
    auto graph = (*e)->TimeDevice(ptrs, 5, a.iters, true);
    if (!plain.ok() || !graph.ok()) {
      std::fprintf(stderr, "%s: time: %s %s\n", a.label.c_str(), plain.status().ToString().c_str(),
                   graph.status().ToString().c_str());
      return 1;
    }
    dev_ms += *plain;
    dev_graph_ms += *graph;
    if (layers.empty()) {
      // Per-layer GPU time (CUDA events around each step) summed by layer op, and per layer
      // into --profile.
      std::vector<LayerInfo> profile;
      std::vector<Tensor> out;
      if ((*e)->Execute(ptrs, &out, &profile).ok()) {
        std::map<std::string, std::pair<double, int>> by_op;
        double total = 0;
        std::ofstream pf;
        if (!a.profile.empty()) pf.open(a.profile, std::ios::app);
        for (const LayerInfo& l : profile) {
          std::string key = l.op.substr(0, l.op.find('+')) + " [" +
                            l.implementation.substr(0, l.implementation.find('(')) + "]";
          by_op[key].first += l.ms;
          by_op[key].second += 1;
          total += l.ms;
          if (pf) {
            pf << a.label << "\t" << a.precision << "\tb" << a.batch << "\t" << l.name << "\t"
               << l.op << "\t" << l.implementation << "\t" << l.ms << "\n";
          }
        }
        std::vector<std::pair<double, std::string>> rows;
        for (const auto& [k, v] : by_op) {
          char buf[256];
          std::snprintf(buf, sizeof(buf), "    %-60s x%-3d %8.3f ms (%4.1f%%)\n", k.c_str(),
                        v.second, v.first, total > 0 ? 100 * v.first / total : 0.0);
          rows.push_back({v.first, buf});
        }
        std::sort(rows.rbegin(), rows.rend());
        for (const auto& r : rows) layers += r.second;
      }
    }
  }
  const double best = std::min(dev_ms, dev_graph_ms);
  char line[512];
  std::snprintf(line, sizeof(line),
                "%s\t%s\tb%lld\tnodes %d/%d\tengines %d\trelL2 %.2e (b%lld)\tdevice %.3f ms\t"
                "graph %.3f ms\t%.0f items/s\thost %.3f ms\tresident %.3f ms\tconvert %.1f s",
                a.label.c_str(), a.precision.c_str(), static_cast<long long>(a.batch),
                sum.converted_nodes, sum.total_nodes, built, worst,
                static_cast<long long>(a.check_batch), dev_ms, dev_graph_ms,
                best > 0 ? a.batch * 1000.0 / best : 0.0, host_ms, resident_ms, convert_s);
  std::printf("%s\n%s", line, layers.c_str());
  if (!a.tsv.empty()) {
    std::ofstream f(a.tsv, std::ios::app);
    f << line << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) {
  kiln::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model")
      a.model = v;
    else if (k == "--input")
      a.input = v;
    else if (k == "--dims")
      a.dims = kiln::ParseDims(v);
    else if (k == "--precision")
      a.precision = v;
    else if (k == "--batch")
      a.batch = std::stoll(v);
    else if (k == "--check-batch")
      a.check_batch = std::stoll(v);
    else if (k == "--iters")
      a.iters = std::stoi(v);
    else if (k == "--int-high")
      a.int_high = std::stoll(v);
    else if (k == "--label")
      a.label = v;
    else if (k == "--tsv")
      a.tsv = v;
    else if (k == "--profile")
      a.profile = v;
    else if (k == "--calib")
      a.calib = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (a.model.empty() || a.input.empty() || a.batch < 1 || a.iters < 1) {
    std::fprintf(stderr, "usage: kiln_cuda_suite --model M --input NAME --dims d1,d2 ...\n");
    return 2;
  }
  if (a.label.empty()) a.label = a.model;
  a.check_batch = std::min(a.check_batch, a.batch);
  return kiln::Run(a);
}
