// serve/http.cc — the KServe v2 (Open Inference Protocol) REST endpoints over cpp-httplib,
// JSON and binary tensor data, /metrics and the access log.
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "serve/grpc.h"
#include "serve/server.h"

namespace kiln::serve {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// An error the protocol layer reports: HTTP status and message.
struct HttpError {
  int status = 400;
  std::string message;
};

int HttpStatus(InferError e) {
  switch (e) {
    case InferError::kOk: return 200;
    case InferError::kInvalid: return 400;
    case InferError::kNotFound: return 404;
    case InferError::kUnavailable: return 503;
    case InferError::kInternal: return 500;
  }
  return 500;
}

void SetJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void SetError(httplib::Response& res, int status, const std::string& message) {
  SetJson(res, status, json{{"error", message}});
}

json ShapeJson(const Shape& s) {
  json a = json::array();
  if (!s.rank_known()) return json::array({-1});
  for (int64_t d : s.dims()) a.push_back(d < 0 ? -1 : d);
  return a;
}

// Flattens nested JSON arrays (row-major) into `out`.
bool Flatten(const json& j, std::vector<const json*>& out, int depth = 0) {
  if (depth > 64) return false;
  if (j.is_array()) {
    for (const auto& e : j) {
      if (!Flatten(e, out, depth + 1)) return false;
    }
    return true;
  }
  out.push_back(&j);
  return true;
}

template <typename T>
bool StoreNumber(const json& v, T* dst) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
    *dst = v.get<bool>();
    return true;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
    *dst = static_cast<T>(v.get<double>());
    return true;
  } else {
    if (!v.is_number_integer()) return false;
    if constexpr (std::is_unsigned_v<T>) {
      if (v.is_number_unsigned()) {
        uint64_t x = v.get<uint64_t>();
        if (x > std::numeric_limits<T>::max()) return false;
        *dst = static_cast<T>(x);
        return true;
      }
      int64_t x = v.get<int64_t>();
      if (x < 0 || static_cast<uint64_t>(x) > std::numeric_limits<T>::max()) return false;
      *dst = static_cast<T>(x);
      return true;
    } else {
      if (v.is_number_unsigned() &&
          v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return false;
      }
      int64_t x = v.get<int64_t>();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) return false;
      *dst = static_cast<T>(x);
      return true;
    }
  }
}

template <typename T>
bool FillTyped(const std::vector<const json*>& vals, Tensor& t) {
  T* d = t.mutable_data<T>();
  for (size_t i = 0; i < vals.size(); ++i) {
    if (!StoreNumber<T>(*vals[i], d + i)) return false;
  }
  return true;
}

bool FillFromJson(const std::vector<const json*>& vals, Tensor& t) {
  switch (t.dtype()) {
    case DataType::kFloat32: return FillTyped<float>(vals, t);
    case DataType::kFloat64: return FillTyped<double>(vals, t);
    case DataType::kInt8: return FillTyped<int8_t>(vals, t);
    case DataType::kInt16: return FillTyped<int16_t>(vals, t);
    case DataType::kInt32: return FillTyped<int32_t>(vals, t);
    case DataType::kInt64: return FillTyped<int64_t>(vals, t);
    case DataType::kUInt8: return FillTyped<uint8_t>(vals, t);
    case DataType::kUInt16: return FillTyped<uint16_t>(vals, t);
    case DataType::kUInt32: return FillTyped<uint32_t>(vals, t);
    case DataType::kUInt64: return FillTyped<uint64_t>(vals, t);
    case DataType::kBool: return FillTyped<bool>(vals, t);
    case DataType::kFloat16:
    case DataType::kBFloat16: {
      uint16_t* d = static_cast<uint16_t*>(t.raw_mutable_data());
      for (size_t i = 0; i < vals.size(); ++i) {
        if (!vals[i]->is_number()) return false;
        const float f = static_cast<float>(vals[i]->get<double>());
        d[i] = t.dtype() == DataType::kFloat16 ? Float16(f).bits : BFloat16(f).bits;
      }
      return true;
    }
    case DataType::kString: {
      std::string* d = t.mutable_data<std::string>();
      for (size_t i = 0; i < vals.size(); ++i) {
        if (!vals[i]->is_string()) return false;
        d[i] = vals[i]->get<std::string>();
      }
      return true;
    }
    default: return false;
  }
}

json TensorData(const Tensor& t) {
  json a = json::array();
  const int64_t n = t.num_elements();
  switch (t.dtype()) {
    case DataType::kFloat32:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<float>()[i]);
      break;
    case DataType::kFloat64:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<double>()[i]);
      break;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      for (int64_t i = 0; i < n; ++i) a.push_back(static_cast<float>(t.GetAsDouble(i)));
      break;
    case DataType::kBool:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<bool>()[i]);
      break;
    case DataType::kString:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<std::string>()[i]);
      break;
    case DataType::kUInt64:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<uint64_t>()[i]);
      break;
    case DataType::kInt64:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<int64_t>()[i]);
      break;
    default:  // the narrower integers are exact as doubles -> int64
      for (int64_t i = 0; i < n; ++i) a.push_back(static_cast<int64_t>(t.GetAsDouble(i)));
      break;
  }
  return a;
}

// Parses an infer request body (JSON, optionally followed by binary tensor data).
StatusOr<InferRequest> ParseInferRequest(const Model& model, const std::string& body,
                                         size_t header_length, bool* binary_output_all,
                                         std::vector<std::pair<std::string, bool>>* outputs_binary,
                                         json* request_id) {
  if (header_length > body.size()) {
    return InvalidArgument("Inference-Header-Content-Length " + std::to_string(header_length) +
                           " exceeds the body size " + std::to_string(body.size()));
  }
  json j = json::parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(header_length),
                       nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("malformed JSON in the request body");
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  InferRequest req;
  if (j.contains("id")) {
    if (!j["id"].is_string()) return InvalidArgument("'id' must be a string");
    req.id = j["id"].get<std::string>();
    *request_id = j["id"];
  }
  *binary_output_all = false;
  if (j.contains("parameters")) {
    const auto& p = j["parameters"];
    if (!p.is_object()) return InvalidArgument("'parameters' must be an object");
    if (p.contains("binary_data_output")) {
      if (!p["binary_data_output"].is_boolean()) {
        return InvalidArgument("'binary_data_output' must be a boolean");
      }
      *binary_output_all = p["binary_data_output"].get<bool>();
    }
  }
  if (!j.contains("inputs") || !j["inputs"].is_array()) {
    return InvalidArgument("'inputs' must be an array");
  }
  size_t offset = header_length;
  for (const auto& in : j["inputs"]) {
    if (!in.is_object()) return InvalidArgument("each of 'inputs' must be an object");
    if (!in.contains("name") || !in["name"].is_string()) {
      return InvalidArgument("an input has no string 'name'");
    }
    const std::string name = in["name"].get<std::string>();
    const std::string where = "input '" + name + "'";
    if (!in.contains("datatype") || !in["datatype"].is_string()) {
      return InvalidArgument(where + ": no string 'datatype'");
    }
    auto dtype = DataTypeFromKServe(in["datatype"].get<std::string>());
    if (!dtype) {
      return InvalidArgument(where + ": unknown datatype '" + in["datatype"].get<std::string>() +
                             "'");
    }
    if (!in.contains("shape") || !in["shape"].is_array()) {
      return InvalidArgument(where + ": no 'shape' array");
    }
    std::vector<int64_t> dims;
    for (const auto& d : in["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) {
        return InvalidArgument(where + ": shape entries must be integers >= 0");
      }
      dims.push_back(d.get<int64_t>());
    }
    const TensorInfo* info = nullptr;
    for (const auto& i : model.inputs()) {
      if (i.name == name) info = &i;
    }
    if (!info) {
      return InvalidArgument("model '" + model.name() + "': unknown input '" + name + "'");
    }
    if (*dtype != info->dtype) {
      return InvalidArgument("model '" + model.name() + "': " + where + " has datatype " +
                             KServeDataType(*dtype) + ", the model expects " +
                             KServeDataType(info->dtype));
    }
    if (!info->shape.Accepts(dims)) {
      return InvalidArgument("model '" + model.name() + "': " + where + " has shape " +
                             DimsToString(dims) + ", the model expects " +
                             info->shape.ToString());
    }
    int64_t binary_size = -1;
    if (in.contains("parameters")) {
      const auto& p = in["parameters"];
      if (!p.is_object()) return InvalidArgument(where + ": 'parameters' must be an object");
      if (p.contains("binary_data_size")) {
        if (!p["binary_data_size"].is_number_integer() || p["binary_data_size"].get<int64_t>() < 0) {
          return InvalidArgument(where + ": 'binary_data_size' must be an integer >= 0");
        }
        binary_size = p["binary_data_size"].get<int64_t>();
      }
    }
    if (binary_size >= 0) {
      if (in.contains("data")) return InvalidArgument(where + ": both 'data' and binary data");
      if (static_cast<uint64_t>(binary_size) > body.size() - offset) {
        return InvalidArgument(where + ": binary_data_size " + std::to_string(binary_size) +
                               " runs past the end of the body");
      }
      // Allocate only what the payload can fill (a huge shape must not allocate first).
      auto t = model.AllocateInput(where, *dtype, dims, RawElementBound(*dtype, binary_size));
      if (!t.ok()) return t.status();
      if (!RawToTensor(body.data() + offset, static_cast<size_t>(binary_size), *t)) {
        return InvalidArgument(where + ": binary_data_size " + std::to_string(binary_size) +
                               " does not hold shape " + DimsToString(dims) + " of " +
                               KServeDataType(*dtype) +
                               (*dtype == DataType::kString
                                    ? " (length-prefixed BYTES)"
                                    : " (" + std::to_string(t->nbytes()) + " bytes)"));
      }
      offset += static_cast<size_t>(binary_size);
      req.inputs.emplace_back(name, std::move(*t));
    } else {
      if (!in.contains("data")) return InvalidArgument(where + ": no 'data'");
      std::vector<const json*> vals;
      if (!Flatten(in["data"], vals)) return InvalidArgument(where + ": 'data' nested too deep");
      auto t = model.AllocateInput(where, *dtype, dims, static_cast<int64_t>(vals.size()));
      if (!t.ok()) return t.status();
      if (static_cast<int64_t>(vals.size()) != t->num_elements()) {
        return InvalidArgument(where + ": 'data' has " + std::to_string(vals.size()) +
                               " elements, shape " + DimsToString(dims) + " needs " +
                               std::to_string(t->num_elements()));
      }
      if (!FillFromJson(vals, *t)) {
        return InvalidArgument(where + ": 'data' holds a value that is not a valid " +
                               KServeDataType(*dtype));
      }
      req.inputs.emplace_back(name, std::move(*t));
    }
  }
  if (offset != body.size()) {
    return InvalidArgument("the body has " + std::to_string(body.size() - offset) +
                           " bytes of binary data that no input claims");
  }
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) return InvalidArgument("'outputs' must be an array");
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        return InvalidArgument("each of 'outputs' must be an object with a string 'name'");
      }
      bool binary = *binary_output_all;
      if (o.contains("parameters")) {
        const auto& p = o["parameters"];
        if (!p.is_object()) return InvalidArgument("output 'parameters' must be an object");
        if (p.contains("binary_data")) {
          if (!p["binary_data"].is_boolean()) {
            return InvalidArgument("output parameter 'binary_data' must be a boolean");
          }
          binary = p["binary_data"].get<bool>();
        }
      }
      req.outputs.push_back(o["name"].get<std::string>());
      outputs_binary->emplace_back(req.outputs.back(), binary);
    }
  }
  return req;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<ModelRepository> repo;
  std::unique_ptr<GrpcFrontend> grpc;
  httplib::Server http;
  std::thread listener;
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> started{false};
  std::once_flag shutdown_once;
  int port = -1;
  int listen_fd = -1;
  std::mutex log_mu;
  std::atomic<uint64_t> http_requests{0};

  void Routes();
  void HandleInfer(const httplib::Request& req, httplib::Response& res, Model& model);
  Model* FindModel(const httplib::Request& req, httplib::Response& res);
};

Model* Server::Impl::FindModel(const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1];
  const std::string version = req.matches.size() > 2 ? std::string(req.matches[2]) : "";
  Model* m = repo->Find(name, version);
  if (!m) {
    SetError(res, 404,
             "unknown model '" + name + "'" + (version.empty() ? "" : " version " + version));
  }
  return m;
}

void Server::Impl::HandleInfer(const httplib::Request& req, httplib::Response& res,
                               Model& model) {
  if (shutting_down) {
    SetError(res, 503, "server is shutting down");
    return;
  }
  size_t header_length = req.body.size();
  if (req.has_header("Inference-Header-Content-Length")) {
    const std::string h = req.get_header_value("Inference-Header-Content-Length");
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(h.c_str(), &end, 10);
    if (h.empty() || *end != '\0' || errno != 0 || h[0] == '-') {
      model.CountFailure();
      SetError(res, 400, "bad Inference-Header-Content-Length '" + h + "'");
      return;
    }
    header_length = static_cast<size_t>(std::min<unsigned long long>(v, SIZE_MAX));
  }
  bool binary_all = false;
  std::vector<std::pair<std::string, bool>> out_binary;
  json id;
  StatusOr<InferRequest> parsed = InvalidArgument("not parsed");
  try {
    parsed = ParseInferRequest(model, req.body, header_length, &binary_all, &out_binary, &id);
  } catch (const std::exception& e) {  // nlohmann type errors: input, not a kiln bug
    parsed = InvalidArgument(std::string("bad request JSON: ") + e.what());
  }
  if (!parsed.ok()) {
    model.CountFailure();
    SetError(res, 400, parsed.status().message());
    return;
  }
  InferResult result = model.Infer(std::move(*parsed));
  if (!result.ok()) {
    SetError(res, HttpStatus(result.error), result.message);
    return;
  }
  json out;
  out["model_name"] = model.name();
  out["model_version"] = model.version();
  if (!id.is_null()) out["id"] = id;
  out["outputs"] = json::array();
  std::string binary;
  for (const auto& [name, t] : result.response.outputs) {
    bool bin = binary_all;
    for (const auto& [n, b] : out_binary) {
      if (n == name) bin = b;
    }
    json o;
    o["name"] = name;
    o["datatype"] = KServeDataType(t.dtype());
    o["shape"] = t.dims();
    if (bin) {
      const size_t before = binary.size();
      binary += TensorToRaw(t);
      o["parameters"] = json{{"binary_data_size", binary.size() - before}};
    } else {
      o["data"] = TensorData(t);
    }
    out["outputs"].push_back(std::move(o));
  }
  std::string header = out.dump();
  res.status = 200;
  if (binary.empty() && !binary_all &&
      std::none_of(out_binary.begin(), out_binary.end(), [](const auto& p) { return p.second; })) {
    res.set_content(header, "application/json");
  } else {
    res.set_header("Inference-Header-Content-Length", std::to_string(header.size()));
    res.set_content(header + binary, "application/octet-stream");
  }
  res.set_header("X-Kiln-Queue-Us", std::to_string(static_cast<int64_t>(result.response.queue_us)));
  res.set_header("X-Kiln-Batch-Size", std::to_string(result.response.batch_size));
}

void Server::Impl::Routes() {
  http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    SetJson(res, 200, json{{"live", true}});
  });
  http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = !shutting_down;
    SetJson(res, ready ? 200 : 503, json{{"ready", ready}});
  });
  http.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    SetJson(res, 200,
            json{{"name", "kiln"},
                 {"version", Version()},
                 {"extensions", json::array({"binary_tensor_data"})}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text;
    text += "# HELP kiln_inference_request_success_total Successful inference requests.\n"
            "# TYPE kiln_inference_request_success_total counter\n"
            "# HELP kiln_inference_request_failure_total Failed inference requests.\n"
            "# TYPE kiln_inference_request_failure_total counter\n"
            "# HELP kiln_inference_count_total Samples inferred (batch rows).\n"
            "# TYPE kiln_inference_count_total counter\n"
            "# HELP kiln_inference_exec_count_total Model executions (batches run).\n"
            "# TYPE kiln_inference_exec_count_total counter\n"
            "# HELP kiln_inference_pending Requests queued or running.\n"
            "# TYPE kiln_inference_pending gauge\n"
            "# HELP kiln_inference_queue_duration_us Time requests waited in the batch queue.\n"
            "# TYPE kiln_inference_queue_duration_us histogram\n"
            "# HELP kiln_inference_compute_duration_us Time of the model run serving a request.\n"
            "# TYPE kiln_inference_compute_duration_us histogram\n"
            "# HELP kiln_inference_request_duration_us Queue plus compute time per request.\n"
            "# TYPE kiln_inference_request_duration_us histogram\n"
            "# HELP kiln_inference_batch_size Batch size (dim 0) of each model run.\n"
            "# TYPE kiln_inference_batch_size histogram\n";
    for (Model* m : repo->models()) text += m->MetricsText();
    text += "# HELP kiln_http_requests_total HTTP requests answered.\n"
            "# TYPE kiln_http_requests_total counter\n"
            "kiln_http_requests_total " + std::to_string(http_requests.load()) + "\n";
    res.status = 200;
    res.set_content(text, "text/plain; version=0.0.4");
  });
  const std::string model_re = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  http.Get(model_re, [this](const httplib::Request& req, httplib::Response& res) {
    Model* m = FindModel(req, res);
    if (!m) return;
    json j;
    j["name"] = m->name();
    j["versions"] = json::array({m->version()});
    j["platform"] = m->platform();
    j["max_batch_size"] = m->config().max_batch_size;
    auto tensors = [](const std::vector<TensorInfo>& infos) {
      json a = json::array();
      for (const auto& i : infos) {
        a.push_back(json{{"name", i.name}, {"datatype", KServeDataType(i.dtype)},
                         {"shape", ShapeJson(i.shape)}});
      }
      return a;
    };
    j["inputs"] = tensors(m->inputs());
    j["outputs"] = tensors(m->outputs());
    SetJson(res, 200, j);
  });
  http.Get(model_re + "/ready", [this](const httplib::Request& req, httplib::Response& res) {
    Model* m = FindModel(req, res);
    if (!m) return;
    const bool ready = !shutting_down;
    SetJson(res, ready ? 200 : 503, json{{"name", m->name()}, {"ready", ready}});
  });
  http.Post(model_re + "/infer", [this](const httplib::Request& req, httplib::Response& res) {
    Model* m = FindModel(req, res);
    if (!m) return;
    HandleInfer(req, res, *m);
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg;
    switch (res.status) {
      case 404: msg = "no such endpoint: " + req.method + " " + req.path; break;
      case 413:
        msg = "request body too large";
        // cpp-httplib caps form bodies at 8 KiB (curl -d sends that Content-Type).
        if (req.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
          msg += " for Content-Type application/x-www-form-urlencoded (8 KiB); send "
                 "Content-Type: application/json or application/octet-stream";
        }
        break;
      case 405: msg = "method not allowed: " + req.method + " " + req.path; break;
      default: msg = "HTTP error " + std::to_string(res.status); break;
    }
    res.set_content(json{{"error", msg}}.dump(), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
}

namespace {
thread_local Clock::time_point g_request_start;
}  // namespace

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  if (options.http_port < 0 || options.http_port > 65535) {
    return InvalidArgument("--http-port " + std::to_string(options.http_port) +
                           ": not a port number");
  }
  if (options.grpc_port < -1 || options.grpc_port > 65535) {
    return InvalidArgument("--grpc-port " + std::to_string(options.grpc_port) +
                           ": not a port number");
  }
  if (options.http_threads < 1) return InvalidArgument("--http-threads must be at least 1");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  KILN_ASSIGN_OR_RETURN(impl->repo, ModelRepository::Load(options));
  if (impl->repo->models().empty()) {
    return NotFound("model repository " + options.model_repository + ": no models");
  }
  const int threads = options.http_threads;
  impl->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl->http.set_payload_max_length(options.max_body_bytes);
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the client's
  // delayed ACK add ~40 ms to every keep-alive response.
  impl->http.set_tcp_nodelay(true);
  // cpp-httplib closes a keep-alive connection after 5 requests by default.
  impl->http.set_keep_alive_max_count(100000);
  // cpp-httplib listens with a backlog of 5 (a compile-time constant of the Debian library):
  // bursts of new connections overflow it and clients see resets. Keep the listening socket
  // so Start() can listen() again with a full backlog (Linux updates it in place).
  impl->http.set_socket_options([p = impl.get()](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    p->listen_fd = sock;
  });
  Impl* p = impl.get();
  impl->http.set_pre_routing_handler([p](const httplib::Request&, httplib::Response&) {
    g_request_start = Clock::now();
    ++p->http_requests;
    return httplib::Server::HandlerResponse::Unhandled;
  });
  if (options.access_log) {
    impl->http.set_logger([p](const httplib::Request& req, const httplib::Response& res) {
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - g_request_start).count();
      json line{{"ts", std::chrono::duration<double>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count()},
                {"remote", req.remote_addr},
                {"method", req.method},
                {"path", req.path},
                {"status", res.status},
                {"ms", ms},
                {"bytes_in", req.body.size()},
                {"bytes_out", res.body.size()}};
      if (res.has_header("X-Kiln-Batch-Size")) {
        line["batch"] = std::stoll(res.get_header_value("X-Kiln-Batch-Size"));
        line["queue_us"] = std::stoll(res.get_header_value("X-Kiln-Queue-Us"));
      }
      if (res.status >= 400 && res.body.size() < 4096) {
        json e = json::parse(res.body, nullptr, false);
        if (e.is_object() && e.contains("error")) line["error"] = e["error"];
      }
      std::lock_guard<std::mutex> lock(p->log_mu);
      std::cerr << line.dump() << "\n";
    });
  }
  impl->Routes();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Start() {
  Impl& s = *impl_;
  if (s.started.exchange(true)) return FailedPrecondition("server already started");
  if (s.options.http_port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
  } else {
    s.port = s.http.bind_to_port(s.options.host, s.options.http_port) ? s.options.http_port : -1;
  }
  if (s.port < 0) {
    return InvalidArgument("cannot listen on " + s.options.host + ":" +
                           std::to_string(s.options.http_port) + " (port in use?)");
  }
  if (s.listen_fd >= 0) ::listen(s.listen_fd, SOMAXCONN);
  if (s.options.grpc_port >= 0) {
    auto grpc = GrpcFrontend::Start(s.repo.get(), s.options, &s.shutting_down);
    if (!grpc.ok()) {
      s.http.stop();
      return grpc.status();
    }
    s.grpc = std::move(*grpc);
  }
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  return Status::OK();
}

int Server::http_port() const { return impl_->port; }

int Server::grpc_port() const { return impl_->grpc ? impl_->grpc->port() : -1; }

void Server::Shutdown() {
  Impl& s = *impl_;
  std::call_once(s.shutdown_once, [&s] {
    s.shutting_down = true;
    s.repo->Flush();
    // Stop accepting; the listener joins its worker threads, which finish the requests they
    // are serving (their Infer calls complete: the batch workers still run).
    if (s.started) s.http.stop();
    if (s.grpc) s.grpc->Shutdown();
    if (s.listener.joinable()) s.listener.join();
    s.repo->Shutdown();
  });
}

std::string Server::MetricsText() const {
  std::string text;
  for (Model* m : impl_->repo->models()) text += m->MetricsText();
  return text;
}

ModelRepository& Server::repository() { return *impl_->repo; }

}  // namespace kiln::serve
