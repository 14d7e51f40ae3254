// kiln_serve_grpc_load: a small load client for the KServe v2 gRPC endpoint of `kiln serve`
// (scripts/serve_load.sh runs it next to wrk for HTTP; docs/serving.md has the figures).
//
// N client threads, each with its own channel (its own HTTP/2 connection), send batch-1
// ModelInfer requests built from the model's metadata (random raw_input_contents; -1 dims
// become 1) until --requests in total are done or --duration seconds have passed. Counts OK,
// UNAVAILABLE (queue full) and other errors, and prints throughput and p50/p99 latency of all
// answered calls, plus one machine-readable line:
//   RESULT ok=N unavailable=N other=N errors=0 p50_ms=X p99_ms=X secs=X
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "grpc_predict_v2.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;  // gRPC deadlines take system_clock

struct Options {
  std::string target = "127.0.0.1:8001";
  std::string model;
  std::string version;
  int concurrency = 4;
  int64_t requests = 0;   // 0: bounded by duration only
  double duration = 5.0;  // seconds; 0: bounded by requests only
  double deadline = 10.0;  // per call, seconds
};

void Usage() {
  std::fprintf(stderr,
               "usage: kiln_serve_grpc_load --model NAME [--target HOST:PORT (127.0.0.1:8001)]\n"
               "         [--version V] [--concurrency N (4)] [--requests N (0: no bound)]\n"
               "         [--duration SECONDS (5; 0: no bound)] [--deadline SECONDS (10)]\n"
               "At least one of --requests and --duration must bound the run.\n");
}

template <typename T>
bool ParseNumber(std::string_view s, T& out) {
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, out);
  return r.ec == std::errc() && r.ptr == end;
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kiln_serve_grpc_load: %s needs a value\n", argv[i]);
      return false;
    }
    std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--target") o.target = v;
    else if (a == "--model") o.model = v;
    else if (a == "--version") o.version = v;
    else if (a == "--concurrency") ok = ParseNumber(v, o.concurrency) && o.concurrency > 0;
    else if (a == "--requests") ok = ParseNumber(v, o.requests) && o.requests >= 0;
    else if (a == "--duration") ok = ParseNumber(v, o.duration) && o.duration >= 0;
    else if (a == "--deadline") ok = ParseNumber(v, o.deadline) && o.deadline > 0;
    else {
      std::fprintf(stderr, "kiln_serve_grpc_load: unknown option %s\n", argv[i - 1]);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "kiln_serve_grpc_load: bad value '%s' for %s\n", argv[i],
                   argv[i - 1]);
      return false;
    }
  }
  if (o.model.empty()) {
    std::fprintf(stderr, "kiln_serve_grpc_load: --model is required\n");
    return false;
  }
  if (o.requests == 0 && o.duration == 0) {
    std::fprintf(stderr, "kiln_serve_grpc_load: unbounded run (--requests 0 and --duration 0)\n");
    return false;
  }
  return true;
}

// Bytes per element of a KServe v2 datatype; 0 for BYTES and unknown types.
size_t ElementSize(const std::string& dt) {
  static const std::map<std::string, size_t> kSizes = {
      {"BOOL", 1}, {"INT8", 1},  {"UINT8", 1},  {"INT16", 2}, {"UINT16", 2},
      {"FP16", 2}, {"BF16", 2},  {"INT32", 4},  {"UINT32", 4}, {"FP32", 4},
      {"INT64", 8}, {"UINT64", 8}, {"FP64", 8}};
  auto it = kSizes.find(dt);
  return it == kSizes.end() ? 0 : it->second;
}

// Random row-major bytes for `n` elements: floats in [-1, 1), integers in [0, 10), bools 0/1.
std::string RandomBytes(const std::string& dt, int64_t n, std::mt19937& rng) {
  std::string out(static_cast<size_t>(n) * ElementSize(dt), '\0');
  char* p = out.data();
  std::uniform_real_distribution<float> uf(-1.f, 1.f);
  std::uniform_int_distribution<int> ui(0, 9);
  for (int64_t i = 0; i < n; ++i) {
    if (dt == "FP32") {
      const float v = uf(rng);
      std::memcpy(p + i * 4, &v, 4);
    } else if (dt == "FP64") {
      const double v = uf(rng);
      std::memcpy(p + i * 8, &v, 8);
    } else if (dt == "FP16" || dt == "BF16") {
      // 1.0 + random mantissa bits, so the value is finite in either format.
      const uint16_t v = static_cast<uint16_t>(dt == "FP16" ? 0x3C00 | (rng() & 0x3FF)
                                                            : 0x3F80 | (rng() & 0x7F));
      std::memcpy(p + i * 2, &v, 2);
    } else if (dt == "BOOL") {
      p[i] = static_cast<char>(rng() & 1);
    } else {  // integers, little-endian
      const uint64_t v = static_cast<uint64_t>(ui(rng));
      std::memcpy(p + i * ElementSize(dt), &v, ElementSize(dt));
    }
  }
  return out;
}

struct ThreadResult {
  int64_t ok = 0, unavailable = 0, other = 0;
  std::vector<double> latency_ms;
  std::string first_error;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, opt)) {
    Usage();
    return 2;
  }

  // Model metadata -> one batch-1 request (the same request for every call of a thread; each
  // thread gets its own random input).
  auto meta_stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(opt.target, grpc::InsecureChannelCredentials()));
  inference::ModelMetadataRequest mq;
  mq.set_name(opt.model);
  mq.set_version(opt.version);
  inference::ModelMetadataResponse meta;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = meta_stub->ModelMetadata(&ctx, mq, &meta);
    if (!s.ok()) {
      std::fprintf(stderr, "kiln_serve_grpc_load: ModelMetadata(%s) at %s failed: %s\n",
                   opt.model.c_str(), opt.target.c_str(), s.error_message().c_str());
      return 1;
    }
  }
  if (meta.inputs_size() == 0) {
    std::fprintf(stderr, "kiln_serve_grpc_load: model %s has no inputs\n", opt.model.c_str());
    return 1;
  }
  inference::ModelInferRequest base;
  base.set_model_name(opt.model);
  base.set_model_version(opt.version);
  std::vector<int64_t> elements;
  for (const auto& in : meta.inputs()) {
    if (ElementSize(in.datatype()) == 0) {
      std::fprintf(stderr, "kiln_serve_grpc_load: input %s has datatype %s, not supported\n",
                   in.name().c_str(), in.datatype().c_str());
      return 1;
    }
    auto* t = base.add_inputs();
    t->set_name(in.name());
    t->set_datatype(in.datatype());
    int64_t n = 1;
    for (int64_t d : in.shape()) {
      const int64_t dim = d < 0 ? 1 : d;
      t->add_shape(dim);
      n *= dim;
    }
    elements.push_back(n);
  }
  std::printf("model %s: %d input(s), first %s %s [", opt.model.c_str(), meta.inputs_size(),
              base.inputs(0).name().c_str(), base.inputs(0).datatype().c_str());
  for (int i = 0; i < base.inputs(0).shape_size(); ++i)
    std::printf("%s%lld", i ? "," : "", static_cast<long long>(base.inputs(0).shape(i)));
  std::printf("], %d client threads\n", opt.concurrency);

  std::atomic<int64_t> issued{0};
  std::vector<ThreadResult> results(static_cast<size_t>(opt.concurrency));
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(opt.duration));
  std::vector<std::thread> threads;
  for (int ti = 0; ti < opt.concurrency; ++ti) {
    threads.emplace_back([&, ti] {
      ThreadResult& r = results[static_cast<size_t>(ti)];
      // A distinct channel argument keeps the threads off a shared subchannel (connection).
      grpc::ChannelArguments args;
      args.SetInt("kiln.load_client_thread", ti);
      auto stub = inference::GRPCInferenceService::NewStub(
          grpc::CreateCustomChannel(opt.target, grpc::InsecureChannelCredentials(), args));
      std::mt19937 rng(1234u + static_cast<unsigned>(ti));
      inference::ModelInferRequest req = base;
      for (int i = 0; i < meta.inputs_size(); ++i)
        req.add_raw_input_contents(RandomBytes(meta.inputs(i).datatype(), elements[i], rng));
      inference::ModelInferResponse resp;
      for (;;) {
        if (opt.requests > 0 && issued.fetch_add(1) >= opt.requests) break;
        if (opt.duration > 0 && Clock::now() >= stop_at) break;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(opt.deadline)));
        resp.Clear();
        const auto t0 = Clock::now();
        grpc::Status s = stub->ModelInfer(&ctx, req, &resp);
        r.latency_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (s.ok() && resp.outputs_size() > 0 &&
            resp.raw_output_contents_size() == resp.outputs_size()) {
          ++r.ok;
        } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++r.unavailable;
        } else {
          ++r.other;
          if (r.first_error.empty())
            r.first_error = s.ok() ? "OK status with " + std::to_string(resp.outputs_size()) +
                                         " outputs and " +
                                         std::to_string(resp.raw_output_contents_size()) +
                                         " raw output contents"
                                   : "code " + std::to_string(s.error_code()) + ": " +
                                         s.error_message();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();

  ThreadResult all;
  for (auto& r : results) {
    all.ok += r.ok;
    all.unavailable += r.unavailable;
    all.other += r.other;
    all.latency_ms.insert(all.latency_ms.end(), r.latency_ms.begin(), r.latency_ms.end());
    if (all.first_error.empty()) all.first_error = r.first_error;
  }
  std::sort(all.latency_ms.begin(), all.latency_ms.end());
  const int64_t total = all.ok + all.unavailable + all.other;
  const double p50 = Percentile(all.latency_ms, 50), p99 = Percentile(all.latency_ms, 99);
  std::printf("%lld requests in %.3f s: %.0f req/s, ok=%lld unavailable=%lld other=%lld, "
              "latency p50 %.2f ms p99 %.2f ms\n",
              static_cast<long long>(total), secs, secs > 0 ? total / secs : 0.0,
              static_cast<long long>(all.ok), static_cast<long long>(all.unavailable),
              static_cast<long long>(all.other), p50, p99);
  if (!all.first_error.empty())
    std::printf("first other error: %s\n", all.first_error.c_str());
  std::printf("RESULT ok=%lld unavailable=%lld other=%lld errors=0 p50_ms=%.2f p99_ms=%.2f "
              "secs=%.3f\n",
              static_cast<long long>(all.ok), static_cast<long long>(all.unavailable),
              static_cast<long long>(all.other), p50, p99, secs);
  return all.other == 0 ? 0 : 1;
}
