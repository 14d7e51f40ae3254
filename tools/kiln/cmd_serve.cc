// `kiln serve --model-repository DIR [options]`: the KServe v2 REST server (src/serve/).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "serve/server.h"

namespace kiln::cli {

namespace {

constexpr const char* kServeHelp = R"(usage: kiln serve --model-repository DIR [options]

Serves every model of a Triton-style repository over the Open Inference Protocol (KServe v2
REST): DIR/<model>/<version>/model.{onnx,pb,pbtxt,json} or a SavedModel directory, with an
optional DIR/<model>/config.json (max_batch_size, dynamic_batching, instance_group, ...;
docs/serving.md). Concurrent requests for a model are batched along dim 0. SIGINT/SIGTERM stop
accepting, drain the requests in flight and exit 0.

options:
  --model-repository DIR   the repository (required)
  --http-port N            HTTP port (default 8000; 0: any free port, printed)
  --grpc-port N            also serve KServe v2 gRPC (GRPCInferenceService) on port N
                           (0: any free port, printed; default: no gRPC)
  --host ADDR              address to listen on (default 0.0.0.0)
  --http-threads N         connections served at once (default 32)
  --max-body-bytes N       larger request bodies get 413 (default 67108864)
  --no-dynamic-batching    run every request alone (overrides config.json)
  --max-queue-delay-us N   batching delay for every model (overrides config.json)
  --engine-cache DIR       disk engine cache (default KILN_ENGINE_CACHE)
  --access-log             one JSON line per request on stderr

endpoints: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/M[/versions/V][/ready],
POST /v2/models/M[/versions/V]/infer (JSON or binary tensor data), GET /metrics (Prometheus);
gRPC inference.GRPCInferenceService (ServerLive/Ready, ModelReady, Server/ModelMetadata,
ModelInfer with raw or typed contents).
)";

}  // namespace

int ServeCommand(int argc, char** argv) {
  auto parsed = Args::Parse(argc, argv,
                            {"model-repository", "http-port", "host", "http-threads",
                             "max-body-bytes", "max-queue-delay-us", "engine-cache",
                             "grpc-port"},
                            {"help", "no-dynamic-batching", "access-log"});
  if (!parsed.ok()) {
    std::cerr << "kiln: " << parsed.status().message() << "\n\n" << kServeHelp;
    return 2;
  }
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kServeHelp;
    return 0;
  }
  auto usage = [](const std::string& m) {
    std::cerr << "kiln: " << m << "\n\n" << kServeHelp;
    return 2;
  };
  if (!args.positionals().empty()) return usage("serve takes no positional arguments");
  auto repo = args.Get("model-repository");
  if (!repo) return usage("serve needs --model-repository DIR");
  serve::ServerOptions options;
  options.model_repository = *repo;
  try {
    if (auto v = args.Get("http-port")) options.http_port = std::stoi(*v);
    if (auto v = args.Get("grpc-port")) options.grpc_port = std::stoi(*v);
    if (auto v = args.Get("http-threads")) options.http_threads = std::stoi(*v);
    if (auto v = args.Get("max-body-bytes")) options.max_body_bytes = std::stoull(*v);
    if (auto v = args.Get("max-queue-delay-us")) options.max_queue_delay_us = std::stoll(*v);
  } catch (const std::exception&) {
    return usage("--http-port, --http-threads, --max-body-bytes and --max-queue-delay-us take "
                 "non-negative integers");
  }
  if (options.max_queue_delay_us && *options.max_queue_delay_us < 0) {
    return usage("--max-queue-delay-us must be >= 0");
  }
  if (auto v = args.Get("host")) options.host = *v;
  if (auto v = args.Get("engine-cache")) options.engine_cache_dir = *v;
  if (args.Has("no-dynamic-batching")) options.dynamic_batching = false;
  options.access_log = args.Has("access-log");

  // SIGINT/SIGTERM are blocked in every thread (the server's threads inherit the mask) and
  // taken here with sigwait, so the shutdown runs on this thread, not in a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = serve::Server::Create(options);
  if (!server.ok()) {
    std::cerr << "kiln: " << server.status() << "\n";
    return 1;
  }
  Status st = (*server)->Start();
  if (!st.ok()) {
    std::cerr << "kiln: " << st << "\n";
    return 1;
  }
  for (serve::Model* m : (*server)->repository().models()) {
    std::printf("model   %s (version %s, %s, max_batch_size %lld, dynamic batching %s)\n",
                m->name().c_str(), m->version().c_str(), m->platform().c_str(),
                static_cast<long long>(m->config().max_batch_size),
                m->config().dynamic_batching && m->config().max_batch_size > 0 ? "on" : "off");
  }
  std::printf("serving HTTP on %s:%d\n", options.host.c_str(), (*server)->http_port());
  if ((*server)->grpc_port() >= 0) {
    std::printf("serving gRPC on %s:%d\n", options.host.c_str(), (*server)->grpc_port());
  }
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::printf("signal %d: draining in-flight requests\n", sig);
  std::fflush(stdout);
  (*server)->Shutdown();
  std::printf("stopped\n");
  return 0;
}

}  // namespace kiln::cli
