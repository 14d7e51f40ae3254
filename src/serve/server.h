// serve/server.h — `kiln serve`: a model repository served over the Open Inference Protocol
// (KServe v2) REST API, with per-model dynamic batching and Prometheus metrics.
//
//   kiln::serve::ServerOptions options;
//   options.model_repository = "/models";
//   options.http_port = 0;  // ephemeral; read it back with http_port()
//   auto server = kiln::serve::Server::Create(options);   // loads every model
//   (*server)->Start();                                    // listens in background threads
//   ...
//   (*server)->Shutdown();  // stop accepting, drain in-flight requests, join threads
//
// Layout, config.json and the endpoints: docs/serving.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::serve {

// DIR/<model>/config.json (all fields optional; Triton's config.pbtxt names where they exist).
struct ModelConfig {
  // Largest batch (dim 0) a request or a formed batch may have; 0: the model has no batch
  // dimension and requests are never concatenated. Default: 8 when every input's dim 0 is
  // unknown (-1), else 0.
  int64_t max_batch_size = -1;  // -1: not given (the default above applies)
  bool dynamic_batching = true;         // concatenate concurrent requests (max_batch_size > 0)
  int64_t max_queue_delay_us = 1000;    // how long the first request waits for others
  std::vector<int64_t> preferred_batch_size;  // run at once when the queue reaches one of these
  int64_t max_queue_size = 128;         // pending requests; beyond: 503 / UNAVAILABLE
  int instance_count = 1;               // worker threads running batches concurrently
  LoadOptions load;                     // SavedModel tags / signature
};

// Parses config.json text; `where` names the file in errors.
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& where);

struct ServerOptions {
  std::string model_repository;
  std::string host = "0.0.0.0";
  int http_port = 8000;                    // 0: an ephemeral port (http_port() tells which)
  int http_threads = 32;                   // connections served at once
  size_t max_body_bytes = 64u << 20;       // larger request bodies: 413
  bool access_log = false;                 // one JSON line per request on stderr
  std::optional<bool> dynamic_batching;    // overrides every model's config when set
  std::optional<int64_t> max_queue_delay_us;  // same
  std::string engine_cache_dir;            // SessionOptions::engine_cache_dir
  int grpc_port = -1;                      // KServe v2 gRPC port; -1: none, 0: ephemeral
};

// One inference, as the protocol layers hand it to a model.
struct InferRequest {
  std::string id;
  Feeds inputs;                        // name -> tensor, checked by Model::Validate
  std::vector<std::string> outputs;    // empty: all of the model's outputs
};

struct InferResponse {
  std::vector<std::pair<std::string, Tensor>> outputs;
  double queue_us = 0;    // time waiting in the batch queue
  double compute_us = 0;  // time of the Session::Run that served it
  int64_t batch_size = 0; // dim 0 of the batch it ran in
};

// Error code of an inference, mapped to HTTP 400/404/503/500 and gRPC codes.
enum class InferError { kOk, kInvalid, kNotFound, kUnavailable, kInternal };

struct InferResult {
  InferError error = InferError::kOk;
  std::string message;
  InferResponse response;
  bool ok() const { return error == InferError::kOk; }
};

class Model;

// A loaded repository: models by name (latest numeric version of each).
class ModelRepository {
 public:
  static StatusOr<std::unique_ptr<ModelRepository>> Load(const ServerOptions& options);
  ~ModelRepository();
  // nullptr when unknown (or the version is not the loaded one; empty version: any).
  Model* Find(const std::string& name, const std::string& version = "") const;
  std::vector<Model*> models() const;
  // Model::Flush on every model (shutdown: in-flight requests need not wait for the delay).
  void Flush();
  // Stops the batch workers after they drained their queues.
  void Shutdown();

 private:
  ModelRepository() = default;
  std::vector<std::unique_ptr<Model>> models_;
};

class Model {
 public:
  Model(std::string name, std::string version, std::string platform, std::string path,
        ModelConfig config, std::unique_ptr<Session> session);
  ~Model();
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::string& platform() const { return platform_; }
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const Session& session() const { return *session_; }
  const std::vector<TensorInfo>& inputs() const { return session_->inputs(); }
  const std::vector<TensorInfo>& outputs() const { return session_->outputs(); }

  // A zero tensor for input `where` of a request, after checking the batch size against
  // max_batch_size and that its element count is at most `payload_elements` (what the request
  // body can fill), so a huge declared shape is refused before it is allocated.
  StatusOr<Tensor> AllocateInput(const std::string& where, DataType dtype,
                                 const std::vector<int64_t>& dims,
                                 int64_t payload_elements) const;
  // Checks a request's inputs (names, dtypes, shapes, batch size) and outputs.
  Status Validate(const InferRequest& request) const;
  // Validates, queues (batching with concurrent requests) and waits for the result. Counts it
  // in the model's metrics.
  InferResult Infer(InferRequest request);
  void CountFailure();  // a request that failed before reaching Infer (bad JSON, ...)
  // Prometheus text lines for this model.
  std::string MetricsText() const;
  // Runs still queued or running.
  int64_t pending() const;
  // From now on, run queued requests at once instead of waiting for the batching delay.
  void Flush();
  void Shutdown();

 private:
  struct Scheduler;
  std::string name_, version_, platform_, path_;
  ModelConfig config_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Scheduler> scheduler_;
};

// The KServe v2 data type name ("FP32", "INT64", "BYTES", ...) of a DataType, and back.
const char* KServeDataType(DataType t);
std::optional<DataType> DataTypeFromKServe(const std::string& name);

// The binary tensor data of the protocol (HTTP binary extension, gRPC raw contents): row-major
// element bytes; BYTES elements each as a 4-byte little-endian length and the bytes.
std::string TensorToRaw(const Tensor& t);
// Fills `t` (already shaped) from raw bytes; false when the size or framing does not match.
bool RawToTensor(const char* data, size_t size, Tensor& t);
// The most elements `bytes` raw bytes of `dtype` can hold (BYTES: 4-byte length each).
int64_t RawElementBound(DataType dtype, int64_t bytes);

class Server {
 public:
  static StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();
  // Binds the HTTP port and serves in background threads.
  Status Start();
  int http_port() const;
  int grpc_port() const;  // -1 when gRPC is off
  // Stops accepting, lets in-flight requests finish, stops the batch workers. Idempotent.
  void Shutdown();
  // The Prometheus text /metrics serves.
  std::string MetricsText() const;
  ModelRepository& repository();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve
