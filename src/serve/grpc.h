// serve/grpc.h — the KServe v2 gRPC endpoint of `kiln serve` (grpc.cc). Internal to src/serve/.
#pragma once

#include <atomic>
#include <memory>

#include "serve/server.h"

namespace kiln::serve {

class GrpcFrontend {
 public:
  // Listens on options.host:options.grpc_port (0: ephemeral) and serves `repo`.
  static StatusOr<std::unique_ptr<GrpcFrontend>> Start(ModelRepository* repo,
                                                       const ServerOptions& options,
                                                       const std::atomic<bool>* shutting_down);
  ~GrpcFrontend();
  int port() const;
  // Stops accepting and waits for the RPCs in flight. Idempotent.
  void Shutdown();

 private:
  GrpcFrontend();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve
