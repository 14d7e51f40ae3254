// serve/grpc.cc — the KServe v2 gRPC GRPCInferenceService (proto/grpc_predict_v2.proto) over
// the same repository, batch scheduler and metrics as the REST endpoints.
#include "serve/grpc.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "grpc_predict_v2.grpc.pb.h"

namespace kiln::serve {

namespace {

grpc::StatusCode GrpcCode(InferError e) {
  switch (e) {
    case InferError::kOk: return grpc::StatusCode::OK;
    case InferError::kInvalid: return grpc::StatusCode::INVALID_ARGUMENT;
    case InferError::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case InferError::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case InferError::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

template <typename Src, typename T>
bool CopyTyped(const Src& src, Tensor& t) {
  if (static_cast<int64_t>(src.size()) != t.num_elements()) return false;
  T* d = t.mutable_data<T>();
  for (int i = 0; i < src.size(); ++i) {
    const auto v = src.Get(i);
    if constexpr (!std::is_same_v<T, bool> && !std::is_floating_point_v<T>) {
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
    }
    d[i] = static_cast<T>(v);
  }
  return true;
}

// Typed InferTensorContents -> tensor; false when the field for the dtype has the wrong count.
bool FromContents(const inference::InferTensorContents& c, Tensor& t) {
  switch (t.dtype()) {
    case DataType::kBool: return CopyTyped<decltype(c.bool_contents()), bool>(c.bool_contents(), t);
    case DataType::kInt8: return CopyTyped<decltype(c.int_contents()), int8_t>(c.int_contents(), t);
    case DataType::kInt16: return CopyTyped<decltype(c.int_contents()), int16_t>(c.int_contents(), t);
    case DataType::kInt32: return CopyTyped<decltype(c.int_contents()), int32_t>(c.int_contents(), t);
    case DataType::kInt64:
      return CopyTyped<decltype(c.int64_contents()), int64_t>(c.int64_contents(), t);
    case DataType::kUInt8:
      return CopyTyped<decltype(c.uint_contents()), uint8_t>(c.uint_contents(), t);
    case DataType::kUInt16:
      return CopyTyped<decltype(c.uint_contents()), uint16_t>(c.uint_contents(), t);
    case DataType::kUInt32:
      return CopyTyped<decltype(c.uint_contents()), uint32_t>(c.uint_contents(), t);
    case DataType::kUInt64:
      return CopyTyped<decltype(c.uint64_contents()), uint64_t>(c.uint64_contents(), t);
    case DataType::kFloat32:
      return CopyTyped<decltype(c.fp32_contents()), float>(c.fp32_contents(), t);
    case DataType::kFloat64:
      return CopyTyped<decltype(c.fp64_contents()), double>(c.fp64_contents(), t);
    case DataType::kString: {
      if (static_cast<int64_t>(c.bytes_contents_size()) != t.num_elements()) return false;
      for (int i = 0; i < c.bytes_contents_size(); ++i) {
        t.mutable_data<std::string>()[i] = c.bytes_contents(i);
      }
      return true;
    }
    default: return false;  // FP16 / BF16 travel as raw contents only
  }
}

void FillTensorMetadata(const std::vector<TensorInfo>& infos,
                        google::protobuf::RepeatedPtrField<
                            inference::ModelMetadataResponse::TensorMetadata>* out) {
  for (const auto& i : infos) {
    auto* m = out->Add();
    m->set_name(i.name);
    m->set_datatype(KServeDataType(i.dtype));
    if (!i.shape.rank_known()) {
      m->add_shape(-1);
    } else {
      for (int64_t d : i.shape.dims()) m->add_shape(d < 0 ? -1 : d);
    }
  }
}

class Service final : public inference::GRPCInferenceService::Service {
 public:
  Service(ModelRepository* repo, const std::atomic<bool>* shutting_down)
      : repo_(repo), shutting_down_(shutting_down) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* r) override {
    r->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* r) override {
    r->set_ready(!*shutting_down_);
    return grpc::Status::OK;
  }
  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* q,
                          inference::ModelReadyResponse* r) override {
    if (!repo_->Find(q->name(), q->version())) return NotFoundStatus(q->name(), q->version());
    r->set_ready(!*shutting_down_);
    return grpc::Status::OK;
  }
  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* r) override {
    r->set_name("kiln");
    r->set_version(Version());
    r->add_extensions("binary_tensor_data");
    return grpc::Status::OK;
  }
  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* q,
                             inference::ModelMetadataResponse* r) override {
    Model* m = repo_->Find(q->name(), q->version());
    if (!m) return NotFoundStatus(q->name(), q->version());
    r->set_name(m->name());
    r->add_versions(m->version());
    r->set_platform(m->platform());
    FillTensorMetadata(m->inputs(), r->mutable_inputs());
    FillTensorMetadata(m->outputs(), r->mutable_outputs());
    return grpc::Status::OK;
  }
  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest* q,
                          inference::ModelInferResponse* r) override {
    Model* m = repo_->Find(q->model_name(), q->model_version());
    if (!m) return NotFoundStatus(q->model_name(), q->model_version());
    if (*shutting_down_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
    }
    auto request = Convert(*m, *q);
    if (!request.ok()) {
      m->CountFailure();
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, request.status().message());
    }
    InferResult result = m->Infer(std::move(*request));
    if (!result.ok()) return grpc::Status(GrpcCode(result.error), result.message);
    r->set_model_name(m->name());
    r->set_model_version(m->version());
    r->set_id(q->id());
    for (const auto& [name, t] : result.response.outputs) {
      auto* o = r->add_outputs();
      o->set_name(name);
      o->set_datatype(KServeDataType(t.dtype()));
      for (int64_t d : t.dims()) o->add_shape(d);
      r->add_raw_output_contents(TensorToRaw(t));
    }
    return grpc::Status::OK;
  }

 private:
  static grpc::Status NotFoundStatus(const std::string& name, const std::string& version) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown model '" + name + "'" +
                            (version.empty() ? "" : " version " + version));
  }

  static StatusOr<InferRequest> Convert(const Model& m, const inference::ModelInferRequest& q) {
    InferRequest req;
    req.id = q.id();
    const bool raw = q.raw_input_contents_size() > 0;
    if (raw && q.raw_input_contents_size() != q.inputs_size()) {
      return InvalidArgument("raw_input_contents has " +
                             std::to_string(q.raw_input_contents_size()) + " entries for " +
                             std::to_string(q.inputs_size()) + " inputs");
    }
    for (int k = 0; k < q.inputs_size(); ++k) {
      const auto& in = q.inputs(k);
      const std::string where = "input '" + in.name() + "'";
      auto dtype = DataTypeFromKServe(in.datatype());
      if (!dtype) return InvalidArgument(where + ": unknown datatype '" + in.datatype() + "'");
      const TensorInfo* info = nullptr;
      for (const auto& i : m.inputs()) {
        if (i.name == in.name()) info = &i;
      }
      if (!info) return InvalidArgument("model '" + m.name() + "': unknown " + where);
      if (*dtype != info->dtype) {
        return InvalidArgument("model '" + m.name() + "': " + where + " has datatype " +
                               in.datatype() + ", the model expects " +
                               KServeDataType(info->dtype));
      }
      std::vector<int64_t> dims(in.shape().begin(), in.shape().end());
      for (int64_t d : dims) {
        if (d < 0) return InvalidArgument(where + ": negative dimension");
      }
      if (!info->shape.Accepts(dims)) {
        return InvalidArgument("model '" + m.name() + "': " + where + " has shape " +
                               DimsToString(dims) + ", the model expects " +
                               info->shape.ToString());
      }
      int64_t bound = 0;  // elements the payload can fill: allocate no more
      if (raw) {
        bound = RawElementBound(*dtype, static_cast<int64_t>(q.raw_input_contents(k).size()));
      } else {
        const auto& c = in.contents();
        bound = std::max({c.bool_contents_size(), c.int_contents_size(), c.int64_contents_size(),
                          c.uint_contents_size(), c.uint64_contents_size(),
                          c.fp32_contents_size(), c.fp64_contents_size(),
                          c.bytes_contents_size()});
      }
      auto t = m.AllocateInput(where, *dtype, dims, bound);
      if (!t.ok()) return t.status();
      if (raw) {
        if (in.has_contents()) return InvalidArgument(where + ": both contents and raw contents");
        const std::string& bytes = q.raw_input_contents(k);
        if (!RawToTensor(bytes.data(), bytes.size(), *t)) {
          return InvalidArgument(where + ": raw contents of " + std::to_string(bytes.size()) +
                                 " bytes do not hold shape " + DimsToString(dims) + " of " +
                                 in.datatype());
        }
      } else if (!FromContents(in.contents(), *t)) {
        return InvalidArgument(where + ": contents do not hold " +
                               std::to_string(t->num_elements()) + " valid " + in.datatype() +
                               " values");
      }
      req.inputs.emplace_back(in.name(), std::move(*t));
    }
    for (const auto& o : q.outputs()) req.outputs.push_back(o.name());
    return req;
  }

  ModelRepository* repo_;
  const std::atomic<bool>* shutting_down_;
};

}  // namespace

struct GrpcFrontend::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  int port = -1;
};

GrpcFrontend::GrpcFrontend() : impl_(std::make_unique<Impl>()) {}
GrpcFrontend::~GrpcFrontend() { Shutdown(); }

StatusOr<std::unique_ptr<GrpcFrontend>> GrpcFrontend::Start(
    ModelRepository* repo, const ServerOptions& options,
    const std::atomic<bool>* shutting_down) {
  std::unique_ptr<GrpcFrontend> f(new GrpcFrontend());
  f->impl_->service = std::make_unique<Service>(repo, shutting_down);
  grpc::ServerBuilder builder;
  const std::string address = options.host + ":" + std::to_string(options.grpc_port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &f->impl_->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(options.max_body_bytes, static_cast<size_t>(INT32_MAX))));
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.RegisterService(f->impl_->service.get());
  f->impl_->server = builder.BuildAndStart();
  if (!f->impl_->server || f->impl_->port <= 0) {
    return InvalidArgument("cannot listen for gRPC on " + address + " (port in use?)");
  }
  return f;
}

int GrpcFrontend::port() const { return impl_->port; }

void GrpcFrontend::Shutdown() {
  if (impl_->server) {
    // Stops accepting; waits for the RPCs in flight (their Infer calls finish).
    impl_->server->Shutdown();
    impl_->server->Wait();
    impl_->server.reset();
  }
}

}  // namespace kiln::serve
