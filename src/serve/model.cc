// serve/model.cc — model repository loading, config.json, request validation, the dynamic
// batch scheduler and per-model metrics.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "serve/server.h"

namespace kiln::serve {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Data types

const char* KServeDataType(DataType t) {
  switch (t) {
    case DataType::kBool: return "BOOL";
    case DataType::kUInt8: return "UINT8";
    case DataType::kUInt16: return "UINT16";
    case DataType::kUInt32: return "UINT32";
    case DataType::kUInt64: return "UINT64";
    case DataType::kInt8: return "INT8";
    case DataType::kInt16: return "INT16";
    case DataType::kInt32: return "INT32";
    case DataType::kInt64: return "INT64";
    case DataType::kFloat16: return "FP16";
    case DataType::kBFloat16: return "BF16";
    case DataType::kFloat32: return "FP32";
    case DataType::kFloat64: return "FP64";
    case DataType::kString: return "BYTES";
    default: return "INVALID";
  }
}

std::optional<DataType> DataTypeFromKServe(const std::string& name) {
  static const std::pair<const char*, DataType> kTable[] = {
      {"BOOL", DataType::kBool},       {"UINT8", DataType::kUInt8},
      {"UINT16", DataType::kUInt16},   {"UINT32", DataType::kUInt32},
      {"UINT64", DataType::kUInt64},   {"INT8", DataType::kInt8},
      {"INT16", DataType::kInt16},     {"INT32", DataType::kInt32},
      {"INT64", DataType::kInt64},     {"FP16", DataType::kFloat16},
      {"BF16", DataType::kBFloat16},   {"FP32", DataType::kFloat32},
      {"FP64", DataType::kFloat64},    {"BYTES", DataType::kString}};
  for (const auto& [n, t] : kTable) {
    if (name == n) return t;
  }
  return std::nullopt;
}

std::string TensorToRaw(const Tensor& t) {
  if (t.dtype() != DataType::kString) {
    return std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  std::string out;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const std::string& s = t.data<std::string>()[i];
    const uint32_t n = static_cast<uint32_t>(s.size());
    char len[4];
    std::memcpy(len, &n, 4);
    out.append(len, 4);
    out += s;
  }
  return out;
}

bool RawToTensor(const char* p, size_t size, Tensor& t) {
  if (t.dtype() != DataType::kString) {
    if (size != t.nbytes()) return false;
    if (size) std::memcpy(t.raw_mutable_data(), p, size);
    return true;
  }
  size_t off = 0;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if (size - off < 4) return false;
    uint32_t n;
    std::memcpy(&n, p + off, 4);
    off += 4;
    if (size - off < n) return false;
    t.mutable_data<std::string>()[i].assign(p + off, n);
    off += n;
  }
  return off == size;
}

int64_t RawElementBound(DataType dtype, int64_t bytes) {
  const size_t size = dtype == DataType::kString ? 4 : DataTypeSize(dtype);
  return size == 0 ? 0 : bytes / static_cast<int64_t>(size);
}

// ---------------------------------------------------------------------------------------------
// config.json

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(where + ": not a JSON object");
  }
  ModelConfig c;
  auto get_int = [&](const nlohmann::json& o, const char* key, int64_t lo,
                     int64_t* out) -> Status {
    if (!o.contains(key)) return Status::OK();
    const auto& v = o[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo) {
      return InvalidArgument(where + ": '" + key + "' must be an integer >= " +
                             std::to_string(lo));
    }
    *out = v.get<int64_t>();
    return Status::OK();
  };
  static const std::set<std::string> kKnown = {
      "name", "platform", "backend", "max_batch_size", "dynamic_batching", "instance_group",
      "instance_count", "max_queue_size", "max_queue_delay_microseconds", "load", "input",
      "output", "version_policy"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kKnown.count(it.key())) {
      return InvalidArgument(where + ": unknown field '" + it.key() + "'");
    }
  }
  KILN_RETURN_IF_ERROR(get_int(j, "max_batch_size", 0, &c.max_batch_size));
  KILN_RETURN_IF_ERROR(get_int(j, "max_queue_size", 1, &c.max_queue_size));
  KILN_RETURN_IF_ERROR(get_int(j, "max_queue_delay_microseconds", 0, &c.max_queue_delay_us));
  int64_t count = c.instance_count;
  KILN_RETURN_IF_ERROR(get_int(j, "instance_count", 1, &count));
  if (j.contains("instance_group")) {
    const auto& g = j["instance_group"];
    if (!g.is_array()) return InvalidArgument(where + ": 'instance_group' must be an array");
    count = 0;
    for (const auto& e : g) {
      if (!e.is_object()) return InvalidArgument(where + ": instance_group entries are objects");
      int64_t n = 1;
      KILN_RETURN_IF_ERROR(get_int(e, "count", 1, &n));
      count += n;
    }
    if (count < 1) count = 1;
  }
  if (count > 64) return InvalidArgument(where + ": instance count above 64");
  c.instance_count = static_cast<int>(count);
  if (j.contains("dynamic_batching")) {
    const auto& d = j["dynamic_batching"];
    if (d.is_boolean()) {
      c.dynamic_batching = d.get<bool>();
    } else if (d.is_object()) {
      c.dynamic_batching = true;
      KILN_RETURN_IF_ERROR(get_int(d, "max_queue_delay_microseconds", 0, &c.max_queue_delay_us));
      KILN_RETURN_IF_ERROR(get_int(d, "max_queue_size", 1, &c.max_queue_size));
      if (d.contains("default_queue_policy")) {
        if (!d["default_queue_policy"].is_object()) {
          return InvalidArgument(where + ": 'default_queue_policy' must be an object");
        }
        KILN_RETURN_IF_ERROR(
            get_int(d["default_queue_policy"], "max_queue_size", 1, &c.max_queue_size));
      }
      if (d.contains("preferred_batch_size")) {
        const auto& p = d["preferred_batch_size"];
        if (!p.is_array()) {
          return InvalidArgument(where + ": 'preferred_batch_size' must be an array");
        }
        for (const auto& e : p) {
          if (!e.is_number_integer() || e.get<int64_t>() < 1) {
            return InvalidArgument(where + ": 'preferred_batch_size' entries are integers >= 1");
          }
          c.preferred_batch_size.push_back(e.get<int64_t>());
        }
      }
    } else {
      return InvalidArgument(where + ": 'dynamic_batching' must be true, false or an object");
    }
  }
  if (j.contains("load")) {
    const auto& l = j["load"];
    if (!l.is_object()) return InvalidArgument(where + ": 'load' must be an object");
    if (l.contains("tags")) {
      if (!l["tags"].is_array()) return InvalidArgument(where + ": 'load.tags' must be an array");
      c.load.saved_model_tags.clear();
      for (const auto& t : l["tags"]) {
        if (!t.is_string()) return InvalidArgument(where + ": 'load.tags' entries are strings");
        c.load.saved_model_tags.push_back(t.get<std::string>());
      }
    }
    if (l.contains("signature")) {
      if (!l["signature"].is_string()) {
        return InvalidArgument(where + ": 'load.signature' must be a string");
      }
      c.load.saved_model_signature_key = l["signature"].get<std::string>();
    }
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Metrics

namespace {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
    counts_.assign(bounds_.size() + 1, 0);
  }
  void Observe(double v) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
    ++counts_[i];
    sum_ += v;
    ++count_;
  }
  void Write(std::ostringstream& os, const std::string& name, const std::string& labels) const {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cum += counts_[i];
      os << name << "_bucket{" << labels << ",le=\"" << bounds_[i] << "\"} " << cum << "\n";
    }
    cum += counts_.back();
    os << name << "_bucket{" << labels << ",le=\"+Inf\"} " << cum << "\n";
    os << name << "_sum{" << labels << "} " << sum_ << "\n";
    os << name << "_count{" << labels << "} " << count_ << "\n";
  }

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

std::vector<double> LatencyBucketsUs() {
  return {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1e6};
}

std::vector<double> BatchBuckets(int64_t max_batch) {
  std::vector<double> b;
  for (int64_t v = 1; v < std::max<int64_t>(max_batch, 1); v *= 2) b.push_back(double(v));
  b.push_back(double(std::max<int64_t>(max_batch, 1)));
  return b;
}

// A batch-compatibility key: dtype and non-batch dims of every input, in order.
std::string BatchKey(const Feeds& inputs) {
  std::string key;
  for (const auto& [name, t] : inputs) {
    key += name + ":" + std::to_string(int(t.dtype()));
    for (int i = 1; i < t.rank(); ++i) key += "," + std::to_string(t.dim(i));
    key += ";";
  }
  return key;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The scheduler: a bounded queue and `instance_count` workers that form batches.

struct Model::Scheduler {
  struct Pending {
    InferRequest request;
    std::string key;      // BatchKey; empty when it may not be batched with others
    int64_t batch = 1;    // dim 0 of its inputs
    Clock::time_point enqueued;
    std::promise<InferResult> promise;
  };

  Model* model = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Pending>> queue;
  bool stopping = false;
  bool flush = false;  // draining: run what is queued without waiting for the delay
  int64_t running = 0;
  std::vector<std::thread> workers;

  std::atomic<uint64_t> success{0}, failure{0}, inferences{0}, executions{0};
  Histogram queue_us{LatencyBucketsUs()};
  Histogram compute_us{LatencyBucketsUs()};
  Histogram request_us{LatencyBucketsUs()};
  std::unique_ptr<Histogram> batch_size;

  bool batching() const {
    return model->config_.dynamic_batching && model->config_.max_batch_size > 0;
  }

  void Work() {
    const ModelConfig& cfg = model->config_;
    for (;;) {
      std::vector<std::unique_ptr<Pending>> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping and drained
        if (batching() && !queue.front()->key.empty()) {
          const std::string key = queue.front()->key;
          const auto deadline =
              queue.front()->enqueued + std::chrono::microseconds(cfg.max_queue_delay_us);
          for (;;) {
            if (queue.empty() || queue.front()->key != key) break;  // taken by another worker
            int64_t total = 0;
            for (const auto& p : queue) {
              if (p->key == key && total + p->batch <= cfg.max_batch_size) total += p->batch;
            }
            const bool preferred =
                std::find(cfg.preferred_batch_size.begin(), cfg.preferred_batch_size.end(),
                          total) != cfg.preferred_batch_size.end();
            if (total >= cfg.max_batch_size || preferred || stopping || flush ||
                Clock::now() >= deadline) {
              break;
            }
            cv.wait_until(lock, deadline);
          }
          if (queue.empty()) continue;
          const std::string k = queue.front()->key;
          int64_t total = 0;
          for (auto it = queue.begin(); it != queue.end();) {
            if ((*it)->key == k && total + (*it)->batch <= cfg.max_batch_size &&
                !(*it)->key.empty()) {
              total += (*it)->batch;
              batch.push_back(std::move(*it));
              it = queue.erase(it);
            } else {
              ++it;
            }
          }
        } else {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        ++running;
      }
      Execute(batch);
      {
        std::lock_guard<std::mutex> lock(mu);
        --running;
      }
      cv.notify_all();
    }
  }

  void Finish(Pending& p, InferResult r, Clock::time_point start) {
    r.response.queue_us = std::chrono::duration<double, std::micro>(start - p.enqueued).count();
    if (r.ok()) {
      ++success;
      queue_us.Observe(r.response.queue_us);
      request_us.Observe(r.response.queue_us + r.response.compute_us);
    } else {
      ++failure;
    }
    p.promise.set_value(std::move(r));
  }

  void Execute(std::vector<std::unique_ptr<Pending>>& batch) {
    const auto start = Clock::now();
    const Session& session = *model->session_;
    if (batch.size() == 1) {
      Pending& p = *batch[0];
      auto out = session.Run(p.request.inputs, p.request.outputs);
      const auto end = Clock::now();
      InferResult r;
      r.response.compute_us = std::chrono::duration<double, std::micro>(end - start).count();
      r.response.batch_size = p.batch;
      ++executions;
      inferences += p.batch;
      if (!out.ok()) {
        r.error = out.status().code() == StatusCode::kInvalidArgument ? InferError::kInvalid
                                                                      : InferError::kInternal;
        r.message = out.status().ToString();
      } else {
        compute_us.Observe(r.response.compute_us);
        batch_size->Observe(double(p.batch));
        const auto names =
            p.request.outputs.empty() ? session.graph_output_names() : p.request.outputs;
        for (size_t i = 0; i < names.size(); ++i) {
          r.response.outputs.emplace_back(names[i], std::move((*out)[i]));
        }
      }
      Finish(p, std::move(r), start);
      return;
    }
    // Concatenate along dim 0.
    int64_t total = 0;
    for (const auto& p : batch) total += p->batch;
    Feeds feeds;
    Status st;
    for (size_t k = 0; k < batch[0]->request.inputs.size() && st.ok(); ++k) {
      const Tensor& first = batch[0]->request.inputs[k].second;
      std::vector<int64_t> dims = first.dims();
      dims[0] = total;
      auto t = Tensor::Create(first.dtype(), dims);
      if (!t.ok()) {
        st = t.status();
        break;
      }
      char* dst = static_cast<char*>(t->raw_mutable_data());
      for (const auto& p : batch) {
        const Tensor& src = p->request.inputs[k].second;
        std::memcpy(dst, src.raw_data(), src.nbytes());
        dst += src.nbytes();
      }
      feeds.emplace_back(batch[0]->request.inputs[k].first, std::move(*t));
    }
    const auto names = session.graph_output_names();
    StatusOr<std::vector<Tensor>> out = st;
    if (st.ok()) out = session.Run(feeds, names);
    const auto end = Clock::now();
    const double compute = std::chrono::duration<double, std::micro>(end - start).count();
    ++executions;
    inferences += total;
    if (out.ok()) {
      for (size_t i = 0; i < out->size(); ++i) {
        const Tensor& t = (*out)[i];
        if (!t.is_tensor() || t.rank() < 1 || t.dim(0) != total || t.dtype() == DataType::kString) {
          out = Internal("model '" + model->name_ + "': output '" + names[i] +
                         "' has no batch dimension of " + std::to_string(total) +
                         " (shape " + DimsToString(t.dims()) +
                         "); set max_batch_size 0 in config.json");
          break;
        }
      }
    }
    if (out.ok()) {
      compute_us.Observe(compute);
      batch_size->Observe(double(total));
    }
    int64_t offset = 0;
    for (auto& p : batch) {
      InferResult r;
      r.response.compute_us = compute;
      r.response.batch_size = total;
      if (!out.ok()) {
        r.error = InferError::kInternal;
        r.message = out.status().ToString();
      } else {
        const auto wanted =
            p->request.outputs.empty() ? names : p->request.outputs;
        for (const auto& w : wanted) {
          size_t i = std::find(names.begin(), names.end(), w) - names.begin();
          const Tensor& t = (*out)[i];
          std::vector<int64_t> dims = t.dims();
          dims[0] = p->batch;
          Tensor part = Tensor::Empty(t.dtype(), dims);
          const size_t row = t.nbytes() / static_cast<size_t>(total);
          std::memcpy(part.raw_mutable_data(),
                      static_cast<const char*>(t.raw_data()) + row * offset, part.nbytes());
          r.response.outputs.emplace_back(w, std::move(part));
        }
      }
      offset += p->batch;
      Finish(*p, std::move(r), start);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Model

Model::Model(std::string name, std::string version, std::string platform, std::string path,
             ModelConfig config, std::unique_ptr<Session> session)
    : name_(std::move(name)),
      version_(std::move(version)),
      platform_(std::move(platform)),
      path_(std::move(path)),
      config_(std::move(config)),
      session_(std::move(session)),
      scheduler_(std::make_unique<Scheduler>()) {
  scheduler_->model = this;
  scheduler_->batch_size = std::make_unique<Histogram>(BatchBuckets(config_.max_batch_size));
  for (int i = 0; i < config_.instance_count; ++i) {
    scheduler_->workers.emplace_back([s = scheduler_.get()] { s->Work(); });
  }
}

Model::~Model() { Shutdown(); }

void Model::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(scheduler_->mu);
    scheduler_->stopping = true;
  }
  scheduler_->cv.notify_all();
  for (auto& w : scheduler_->workers) {
    if (w.joinable()) w.join();
  }
}

void Model::Flush() {
  {
    std::lock_guard<std::mutex> lock(scheduler_->mu);
    scheduler_->flush = true;
  }
  scheduler_->cv.notify_all();
}

int64_t Model::pending() const {
  std::lock_guard<std::mutex> lock(scheduler_->mu);
  return static_cast<int64_t>(scheduler_->queue.size()) + scheduler_->running;
}

void Model::CountFailure() { ++scheduler_->failure; }

StatusOr<Tensor> Model::AllocateInput(const std::string& where, DataType dtype,
                                       const std::vector<int64_t>& dims,
                                       int64_t payload_elements) const {
  const std::string w = "model '" + name_ + "': " + where;
  if (config_.max_batch_size > 0 && !dims.empty() && dims[0] > config_.max_batch_size) {
    return InvalidArgument(w + " has batch size " + std::to_string(dims[0]) +
                           ", above max_batch_size " + std::to_string(config_.max_batch_size));
  }
  auto n = CheckedNumElements(dims);
  if (!n.ok()) return n.status().WithContext(w);
  if (*n > payload_elements) {
    return InvalidArgument(w + ": shape " + DimsToString(dims) + " needs " +
                           std::to_string(*n) + " elements, the request holds " +
                           std::to_string(payload_elements));
  }
  auto t = Tensor::Create(dtype, dims);
  if (!t.ok()) return t.status().WithContext(w);
  return t;
}

Status Model::Validate(const InferRequest& request) const {
  const std::string where = "model '" + name_ + "'";
  std::set<std::string> seen;
  int64_t batch = -1;
  for (const auto& [name, t] : request.inputs) {
    auto it = std::find_if(inputs().begin(), inputs().end(),
                           [&](const TensorInfo& i) { return i.name == name; });
    if (it == inputs().end()) return InvalidArgument(where + ": unknown input '" + name + "'");
    if (!seen.insert(name).second) {
      return InvalidArgument(where + ": input '" + name + "' given twice");
    }
    if (t.dtype() != it->dtype) {
      return InvalidArgument(where + ": input '" + name + "' has datatype " +
                             KServeDataType(t.dtype()) + ", the model expects " +
                             KServeDataType(it->dtype));
    }
    if (!it->shape.Accepts(t.dims())) {
      return InvalidArgument(where + ": input '" + name + "' has shape " +
                             DimsToString(t.dims()) + ", the model expects " +
                             it->shape.ToString());
    }
    if (config_.max_batch_size > 0) {
      if (t.rank() < 1 || t.dim(0) < 1) {
        return InvalidArgument(where + ": input '" + name + "' needs a batch dimension >= 1");
      }
      if (t.dim(0) > config_.max_batch_size) {
        return InvalidArgument(where + ": input '" + name + "' has batch size " +
                               std::to_string(t.dim(0)) + ", above max_batch_size " +
                               std::to_string(config_.max_batch_size));
      }
      if (batch >= 0 && t.dim(0) != batch) {
        return InvalidArgument(where + ": inputs have different batch sizes");
      }
      batch = t.dim(0);
    }
  }
  for (const auto& i : inputs()) {
    if (!seen.count(i.name)) return InvalidArgument(where + ": input '" + i.name + "' missing");
  }
  std::set<std::string> out_seen;
  for (const auto& o : request.outputs) {
    auto it = std::find_if(outputs().begin(), outputs().end(),
                           [&](const TensorInfo& i) { return i.name == o; });
    if (it == outputs().end()) return InvalidArgument(where + ": unknown output '" + o + "'");
    if (!out_seen.insert(o).second) {
      return InvalidArgument(where + ": output '" + o + "' requested twice");
    }
  }
  return Status::OK();
}

InferResult Model::Infer(InferRequest request) {
  Status st = Validate(request);
  if (!st.ok()) {
    ++scheduler_->failure;
    return InferResult{InferError::kInvalid, st.message(), {}};
  }
  auto p = std::make_unique<Scheduler::Pending>();
  // Order the feeds as the model declares them so batch keys of equal requests match.
  std::sort(request.inputs.begin(), request.inputs.end(),
            [&](const auto& a, const auto& b) {
              auto pos = [&](const std::string& n) {
                return std::find_if(inputs().begin(), inputs().end(),
                                    [&](const TensorInfo& i) { return i.name == n; }) -
                       inputs().begin();
              };
              return pos(a.first) < pos(b.first);
            });
  bool batchable = config_.max_batch_size > 0 && !request.inputs.empty();
  for (const auto& [n, t] : request.inputs) {
    if (t.dtype() == DataType::kString || !t.is_tensor()) batchable = false;
  }
  if (batchable) {
    p->key = BatchKey(request.inputs);
    p->batch = request.inputs[0].second.dim(0);
  }
  p->request = std::move(request);
  p->enqueued = Clock::now();
  auto future = p->promise.get_future();
  {
    std::lock_guard<std::mutex> lock(scheduler_->mu);
    if (scheduler_->stopping) {
      ++scheduler_->failure;
      return InferResult{InferError::kUnavailable, "server is shutting down", {}};
    }
    if (static_cast<int64_t>(scheduler_->queue.size()) >= config_.max_queue_size) {
      ++scheduler_->failure;
      return InferResult{InferError::kUnavailable,
                         "model '" + name_ + "': queue full (max_queue_size " +
                             std::to_string(config_.max_queue_size) + ")",
                         {}};
    }
    scheduler_->queue.push_back(std::move(p));
  }
  scheduler_->cv.notify_all();
  return future.get();
}

std::string Model::MetricsText() const {
  std::ostringstream os;
  const std::string l = "model=\"" + name_ + "\",version=\"" + version_ + "\"";
  const Scheduler& s = *scheduler_;
  os << "kiln_inference_request_success_total{" << l << "} " << s.success.load() << "\n";
  os << "kiln_inference_request_failure_total{" << l << "} " << s.failure.load() << "\n";
  os << "kiln_inference_count_total{" << l << "} " << s.inferences.load() << "\n";
  os << "kiln_inference_exec_count_total{" << l << "} " << s.executions.load() << "\n";
  os << "kiln_inference_pending{" << l << "} " << pending() << "\n";
  s.queue_us.Write(os, "kiln_inference_queue_duration_us", l);
  s.compute_us.Write(os, "kiln_inference_compute_duration_us", l);
  s.request_us.Write(os, "kiln_inference_request_duration_us", l);
  s.batch_size->Write(os, "kiln_inference_batch_size", l);
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// Repository

namespace {

// The model file inside a version directory and its platform name.
StatusOr<std::pair<std::string, std::string>> FindModelFile(const fs::path& vdir) {
  std::error_code ec;
  if (fs::exists(vdir / "saved_model.pb", ec) || fs::exists(vdir / "saved_model.pbtxt", ec)) {
    return std::make_pair(vdir.string(), std::string("tensorflow_savedmodel"));
  }
  static const std::pair<const char*, const char*> kFiles[] = {
      {"model.onnx", "onnx"},          {"model.pb", "tensorflow_graphdef"},
      {"model.pbtxt", "tensorflow_graphdef"}, {"model.json", "tfjs"},
      {"model.savedmodel", "tensorflow_savedmodel"}};
  for (const auto& [f, platform] : kFiles) {
    if (fs::exists(vdir / f, ec)) return std::make_pair((vdir / f).string(), std::string(platform));
  }
  return NotFound(vdir.string() + ": no model.onnx, model.pb, model.pbtxt, model.json, "
                  "model.savedmodel or SavedModel (saved_model.pb)");
}

}  // namespace

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(const ServerOptions& options) {
  const fs::path root(options.model_repository);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return NotFound("model repository " + root.string() + ": not a directory");
  }
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (e.is_directory(ec) && e.path().filename().string()[0] != '.') dirs.push_back(e.path());
  }
  if (ec) return InvalidArgument("model repository " + root.string() + ": " + ec.message());
  std::sort(dirs.begin(), dirs.end());
  std::unique_ptr<ModelRepository> repo(new ModelRepository());
  for (const auto& mdir : dirs) {
    const std::string name = mdir.filename().string();
    ModelConfig config;
    const fs::path cfg_path = mdir / "config.json";
    bool have_config = fs::exists(cfg_path, ec);
    if (have_config) {
      std::ifstream in(cfg_path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      if (!in) return InvalidArgument(cfg_path.string() + ": cannot read");
      KILN_ASSIGN_OR_RETURN(config, ParseModelConfig(ss.str(), cfg_path.string()));
    }
    // Latest numeric version directory.
    int64_t best = -1;
    for (const auto& e : fs::directory_iterator(mdir, ec)) {
      const std::string v = e.path().filename().string();
      if (!e.is_directory(ec) || v.empty() || v.size() > 18 ||
          !std::all_of(v.begin(), v.end(), [](unsigned char ch) { return std::isdigit(ch); })) {
        continue;
      }
      best = std::max<int64_t>(best, std::stoll(v));
    }
    if (best < 0) {
      return NotFound("model '" + name + "' (" + mdir.string() +
                      "): no numeric version directory (" + name + "/1/model.onnx)");
    }
    const std::string version = std::to_string(best);
    KILN_ASSIGN_OR_RETURN(auto file, FindModelFile(mdir / version));
    SessionOptions so;
    so.engine_cache_dir = options.engine_cache_dir;
    so.load = config.load;
    auto session = Session::Load(file.first, so);
    if (!session.ok()) return session.status().WithContext("model '" + name + "'");
    if (config.max_batch_size < 0) {
      bool all_dynamic = !(*session)->inputs().empty();
      for (const auto& i : (*session)->inputs()) {
        if (!i.shape.rank_known() || i.shape.rank() < 1 || i.shape.dim(0) != -1) {
          all_dynamic = false;
        }
      }
      config.max_batch_size = all_dynamic ? 8 : 0;
    } else if (config.max_batch_size > 0) {
      for (const auto& i : (*session)->inputs()) {
        if (i.shape.rank_known() && (i.shape.rank() < 1 ||
                                     (i.shape.dim(0) != -1 && i.shape.dim(0) < config.max_batch_size))) {
          return InvalidArgument(cfg_path.string() + ": max_batch_size " +
                                 std::to_string(config.max_batch_size) + " but input '" + i.name +
                                 "' has shape " + i.shape.ToString());
        }
      }
    }
    if (options.dynamic_batching) config.dynamic_batching = *options.dynamic_batching;
    if (options.max_queue_delay_us) config.max_queue_delay_us = *options.max_queue_delay_us;
    repo->models_.push_back(std::make_unique<Model>(name, version, file.second, file.first,
                                                    std::move(config), std::move(*session)));
  }
  return repo;
}

ModelRepository::~ModelRepository() { Shutdown(); }

Model* ModelRepository::Find(const std::string& name, const std::string& version) const {
  for (const auto& m : models_) {
    if (m->name() == name && (version.empty() || version == m->version())) return m.get();
  }
  return nullptr;
}

std::vector<Model*> ModelRepository::models() const {
  std::vector<Model*> out;
  for (const auto& m : models_) out.push_back(m.get());
  return out;
}

void ModelRepository::Flush() {
  for (auto& m : models_) m->Flush();
}

void ModelRepository::Shutdown() {
  for (auto& m : models_) m->Shutdown();
}

}  // namespace kiln::serve
