// kiln serve (src/serve/): KServe v2 REST and gRPC endpoints over loopback on ephemeral ports, JSON and
// binary tensor data, error codes, dynamic batching (results split back correctly under
// concurrent requests), queue bound (503), body limit (413), metrics, graceful shutdown.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "grpc_predict_v2.grpc.pb.h"
#include "serve/server.h"

namespace kiln::serve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kModel = std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx";
const char* kOut = "softmax_0.tmp_0";
const httplib::Headers kJsonHeaders = {{"Content-Type", "application/json"}};

std::vector<float> RandomData(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

Tensor MakeInput(int64_t batch, uint32_t seed) {
  auto v = RandomData(static_cast<size_t>(batch * 3 * 48 * 192), seed);
  return Tensor::FromVector(v, {batch, 3, 48, 192});
}

// A repository in a fresh temp dir: cls/1/model.onnx (+ config.json when given).
class Repo {
 public:
  explicit Repo(const std::string& config_json = "") {
    dir_ = fs::temp_directory_path() /
           ("kiln_serve_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(dir_ / "cls" / "1");
    fs::copy_file(kModel, dir_ / "cls" / "1" / "model.onnx");
    if (!config_json.empty()) std::ofstream(dir_ / "cls" / "config.json") << config_json;
  }
  ~Repo() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path() const { return dir_.string(); }
  fs::path dir() const { return dir_; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

std::unique_ptr<Server> StartServer(const std::string& repo, ServerOptions options = {}) {
  options.model_repository = repo;
  options.host = "127.0.0.1";
  options.http_port = 0;
  auto server = Server::Create(options);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  Status st = (*server)->Start();
  EXPECT_TRUE(st.ok()) << st;
  return std::move(*server);
}

// What Session::Run (and so `kiln run`) gives for this input.
std::vector<float> Reference(const Tensor& input) {
  auto session = Session::Load(kModel);
  EXPECT_TRUE(session.ok()) << session.status();
  auto out = (*session)->Run({{"x", input}}, {kOut});
  EXPECT_TRUE(out.ok()) << out.status();
  const Tensor& t = (*out)[0];
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

json InferBody(const Tensor& input, bool with_outputs = true) {
  json in{{"name", "x"},
          {"datatype", "FP32"},
          {"shape", input.dims()},
          {"data", std::vector<float>(input.data<float>(),
                                      input.data<float>() + input.num_elements())}};
  json body{{"id", "req-1"}, {"inputs", json::array({in})}};
  if (with_outputs) body["outputs"] = json::array({json{{"name", kOut}}});
  return body;
}

std::vector<float> OutputData(const json& response) {
  std::vector<float> v;
  for (const auto& x : response["outputs"][0]["data"]) v.push_back(x.get<float>());
  return v;
}

// Binary tensor extension request: JSON header then the raw FP32 bytes.
httplib::Result PostBinary(httplib::Client& cli, const std::string& path, const Tensor& input,
                           bool binary_output, int64_t declared_size = -1) {
  json in{{"name", "x"},
          {"datatype", "FP32"},
          {"shape", input.dims()},
          {"parameters",
           {{"binary_data_size",
             declared_size >= 0 ? declared_size : static_cast<int64_t>(input.nbytes())}}}};
  json body{{"inputs", json::array({in})},
            {"outputs", json::array({json{{"name", kOut},
                                          {"parameters", {{"binary_data", binary_output}}}}})}};
  const std::string header = body.dump();
  std::string payload = header;
  payload.append(static_cast<const char*>(input.raw_data()), input.nbytes());
  httplib::Headers h = {{"Inference-Header-Content-Length", std::to_string(header.size())}};
  return cli.Post(path.c_str(), h, payload, "application/octet-stream");
}

TEST(ServeConfig, ParsesTritonFields) {
  auto c = ParseModelConfig(R"({"max_batch_size": 4, "dynamic_batching":
      {"max_queue_delay_microseconds": 250, "preferred_batch_size": [2, 4],
       "default_queue_policy": {"max_queue_size": 7}}, "instance_group": [{"count": 2}, {}]})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_batch_size, 4);
  EXPECT_TRUE(c->dynamic_batching);
  EXPECT_EQ(c->max_queue_delay_us, 250);
  EXPECT_EQ(c->max_queue_size, 7);
  EXPECT_EQ(c->instance_count, 3);
  EXPECT_EQ(c->preferred_batch_size, (std::vector<int64_t>{2, 4}));
  auto off = ParseModelConfig(R"({"dynamic_batching": false})", "c.json");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->dynamic_batching);
}

TEST(ServeConfig, RejectsBadConfigs) {
  for (const char* bad : {"{", "[]", R"({"max_batch_size": -1})", R"({"max_batch_size": "8"})",
                          R"({"dynamic_batching": 3})", R"({"instance_group": [{"count": 0}]})",
                          R"({"max_batch_sise": 8})", R"({"load": {"tags": "serve"}})"}) {
    auto c = ParseModelConfig(bad, "cls/config.json");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("cls/config.json"), std::string::npos);
  }
}

TEST(ServeRepository, BadRepositoriesFailToLoad) {
  ServerOptions o;
  o.model_repository = "/nonexistent/kiln-repo";
  EXPECT_FALSE(Server::Create(o).ok());
  Repo repo(R"({"max_batch_size": "x"})");
  o.model_repository = repo.path();
  auto s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("config.json"), std::string::npos);
  Repo noversion;
  fs::rename(noversion.dir() / "cls" / "1", noversion.dir() / "cls" / "latest");
  o.model_repository = noversion.path();
  s = Server::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("version"), std::string::npos);
}

TEST(Serve, HealthAndMetadataEndpoints) {
  Repo repo;
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  auto r = cli.Get("/v2/health/live");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = cli.Get("/v2/health/ready");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = cli.Get("/v2");
  ASSERT_TRUE(r);
  auto meta = json::parse(r->body);
  EXPECT_EQ(meta["name"], "kiln");
  EXPECT_EQ(meta["extensions"][0], "binary_tensor_data");

  for (const char* path : {"/v2/models/cls", "/v2/models/cls/versions/1"}) {
    r = cli.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    auto m = json::parse(r->body);
    EXPECT_EQ(m["name"], "cls");
    EXPECT_EQ(m["versions"], json::array({"1"}));
    EXPECT_EQ(m["platform"], "onnx");
    ASSERT_EQ(m["inputs"].size(), 1u);
    EXPECT_EQ(m["inputs"][0]["name"], "x");
    EXPECT_EQ(m["inputs"][0]["datatype"], "FP32");
    EXPECT_EQ(m["inputs"][0]["shape"][0], -1);
    EXPECT_EQ(m["inputs"][0]["shape"][1], 3);
    EXPECT_EQ(m["outputs"][0]["name"], kOut);
    EXPECT_EQ(m["max_batch_size"], 8);  // dim 0 unknown, no config: the default
  }
  r = cli.Get("/v2/models/cls/ready");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["ready"], true);

  // Unknown model / version / endpoint: 404 with {"error": ...}.
  for (const char* path : {"/v2/models/nope", "/v2/models/cls/versions/7",
                           "/v2/models/nope/ready", "/v3/whatever"}) {
    r = cli.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    auto e = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.is_object()) << path << ": " << r->body;
    EXPECT_TRUE(e.contains("error")) << path;
  }
}

TEST(Serve, JsonInferMatchesSessionRun) {
  Repo repo;
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  const Tensor input = MakeInput(3, 11);
  const auto expected = Reference(input);
  for (bool with_outputs : {true, false}) {
    auto r = cli.Post("/v2/models/cls/infer", kJsonHeaders, InferBody(input, with_outputs).dump(),
                      "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto j = json::parse(r->body);
    EXPECT_EQ(j["model_name"], "cls");
    EXPECT_EQ(j["model_version"], "1");
    EXPECT_EQ(j["id"], "req-1");
    ASSERT_EQ(j["outputs"].size(), 1u);
    EXPECT_EQ(j["outputs"][0]["name"], kOut);
    EXPECT_EQ(j["outputs"][0]["datatype"], "FP32");
    EXPECT_EQ(j["outputs"][0]["shape"], json::array({3, 2}));
    EXPECT_EQ(OutputData(j), expected);  // bit-identical: the floats round-trip through JSON
  }
  // Nested (row-major) data is accepted too.
  json body = InferBody(input);
  json nested = json::array();
  const float* p = input.data<float>();
  for (int64_t b = 0; b < 3; ++b) {
    nested.push_back(std::vector<float>(p + b * 3 * 48 * 192, p + (b + 1) * 3 * 48 * 192));
  }
  body["inputs"][0]["data"] = nested;
  auto r = cli.Post("/v2/models/cls/versions/1/infer", kJsonHeaders, body.dump(),
                    "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(OutputData(json::parse(r->body)), expected);
}

TEST(Serve, BinaryInferMatchesSessionRun) {
  Repo repo;
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  const Tensor input = MakeInput(2, 23);
  const auto expected = Reference(input);
  // Binary in, binary out.
  auto r = PostBinary(cli, "/v2/models/cls/infer", input, true);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->has_header("Inference-Header-Content-Length"));
  const size_t h = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
  ASSERT_LE(h, r->body.size());
  auto j = json::parse(r->body.substr(0, h));
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], expected.size() * 4);
  ASSERT_EQ(r->body.size() - h, expected.size() * 4);
  std::vector<float> got(expected.size());
  std::memcpy(got.data(), r->body.data() + h, got.size() * 4);
  EXPECT_EQ(got, expected);
  // Binary in, JSON out.
  r = PostBinary(cli, "/v2/models/cls/infer", input, false);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_FALSE(r->has_header("Inference-Header-Content-Length"));
  EXPECT_EQ(OutputData(json::parse(r->body)), expected);
  // A binary_data_size that does not fit the shape: 400.
  r = PostBinary(cli, "/v2/models/cls/infer", input, false, static_cast<int64_t>(input.nbytes()) - 4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
}

TEST(Serve, BadRequestsGetErrorsWithStatusCodes) {
  Repo repo;
  ServerOptions o;
  o.max_body_bytes = 2u << 20;
  auto server = StartServer(repo.path(), o);
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  const Tensor input = MakeInput(1, 5);
  auto post = [&](const std::string& path, const std::string& body) {
    auto r = cli.Post(path.c_str(), kJsonHeaders, body, "application/json");
    EXPECT_TRUE(r);
    return r;
  };
  auto expect_error = [&](const httplib::Result& r, int status, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->status, status) << what << ": " << r->body;
    auto e = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << what << ": " << r->body;
    EXPECT_FALSE(e["error"].get<std::string>().empty()) << what;
  };
  expect_error(post("/v2/models/nope/infer", InferBody(input).dump()), 404, "unknown model");
  expect_error(post("/v2/models/cls/infer", "{\"inputs\": [ {"), 400, "malformed JSON");
  expect_error(post("/v2/models/cls/infer", "[1, 2]"), 400, "not an object");
  json b = InferBody(input);
  b["inputs"][0]["datatype"] = "INT64";
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "wrong datatype");
  b = InferBody(input);
  b["inputs"][0]["datatype"] = "FLOAT99";
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "unknown datatype");
  b = InferBody(input);
  b["inputs"][0]["shape"] = json::array({1, 4, 48, 192});
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "wrong shape");
  b = InferBody(input);
  b["inputs"][0]["shape"] = json::array({1, 3, 48, 191});
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "data count mismatch");
  b = InferBody(input);
  b["inputs"][0]["data"][7] = "seven";
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "non-numeric data");
  b = InferBody(input);
  b["inputs"][0]["name"] = "y";
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "unknown input");
  b = InferBody(input);
  b["inputs"] = json::array();
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "missing input");
  b = InferBody(input);
  b["outputs"][0]["name"] = "nope";
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "unknown output");
  b = InferBody(input);
  b["inputs"][0]["shape"] = json::array({"1", 3, 48, 192});
  expect_error(post("/v2/models/cls/infer", b.dump()), 400, "string dim");
  // A huge declared shape with little data: refused before anything is allocated.
  b = InferBody(input);
  // (885 MB: under the tensor size cap, so only the payload check stops it.)
  b["inputs"][0]["shape"] = json::array({8, 3, 4800, 1920});
  auto huge = post("/v2/models/cls/infer", b.dump());
  expect_error(huge, 400, "huge shape");
  EXPECT_NE(huge->body.find("the request holds"), std::string::npos) << huge->body;
  {
    json in{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 3, 4800, 1920}},
            {"parameters", {{"binary_data_size", 16}}}};
    const std::string header = json{{"inputs", json::array({in})}}.dump();
    httplib::Headers h = {{"Inference-Header-Content-Length", std::to_string(header.size())}};
    huge = cli.Post("/v2/models/cls/infer", h, header + std::string(16, 'a'),
                    "application/octet-stream");
    expect_error(huge, 400, "huge binary shape");
    EXPECT_NE(huge->body.find("the request holds"), std::string::npos) << huge->body;
  }
  // Batch above max_batch_size (8).
  const Tensor big = MakeInput(9, 6);
  expect_error(PostBinary(cli, "/v2/models/cls/infer", big, false), 400, "batch too large");
  // Header length past the body.
  {
    httplib::Headers h = {{"Inference-Header-Content-Length", "999999"}};
    expect_error(cli.Post("/v2/models/cls/infer", h, InferBody(input).dump(), "application/json"),
                 400, "header length past the body");
    h = {{"Inference-Header-Content-Length", "12x"}};
    expect_error(cli.Post("/v2/models/cls/infer", h, InferBody(input).dump(), "application/json"),
                 400, "bad header length");
  }
  // Oversize body: 413.
  expect_error(post("/v2/models/cls/infer", std::string(3u << 20, ' ')), 413, "oversize body");
  // GET on infer: not a route.
  auto r = cli.Get("/v2/models/cls/infer");
  ASSERT_TRUE(r);
  EXPECT_GE(r->status, 400);
  // Failures are counted.
  EXPECT_NE(server->MetricsText().find("kiln_inference_request_failure_total{model=\"cls\","
                                       "version=\"1\"} 1"),
            std::string::npos);
  // The server still serves after all that.
  r = post("/v2/models/cls/infer", InferBody(input).dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Concurrent requests are concatenated along dim 0 (a long queue delay makes them meet; the
// batch runs as soon as its 8 rows are there), run once and split back: each client gets
// exactly its own rows.
TEST(Serve, DynamicBatchingSplitsResultsBack) {
  Repo repo(R"({"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 2000000}})");
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  constexpr int kClients = 6;
  const int64_t batches[kClients] = {1, 2, 1, 1, 2, 1};  // 8 rows in all
  std::vector<Tensor> inputs;
  std::vector<std::vector<float>> expected;
  for (int i = 0; i < kClients; ++i) {
    inputs.push_back(MakeInput(batches[i], 100 + i));
    expected.push_back(Reference(inputs.back()));
  }
  std::vector<std::vector<float>> got(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<int64_t> ran_in(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client cli("127.0.0.1", server->http_port());
      cli.set_read_timeout(60, 0);
      auto r = PostBinary(cli, "/v2/models/cls/infer", inputs[i], i % 2 == 0);
      if (!r) return;
      status[i] = r->status;
      if (r->status != 200) return;
      ran_in[i] = std::stoll(r->get_header_value("X-Kiln-Batch-Size"));
      if (i % 2 == 0) {
        const size_t h = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
        got[i].resize((r->body.size() - h) / 4);
        std::memcpy(got[i].data(), r->body.data() + h, got[i].size() * 4);
      } else {
        got[i] = OutputData(json::parse(r->body));
      }
    });
  }
  for (auto& t : threads) t.join();
  int64_t largest = 0;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(status[i], 200) << "client " << i;
    ASSERT_EQ(got[i].size(), expected[i].size()) << "client " << i;
    for (size_t k = 0; k < got[i].size(); ++k) {
      EXPECT_NEAR(got[i][k], expected[i][k], 1e-5) << "client " << i << " value " << k;
    }
    largest = std::max(largest, ran_in[i]);
  }
  EXPECT_GT(largest, 2) << "no request was batched with another";
  const std::string metrics = server->MetricsText();
  EXPECT_NE(metrics.find("kiln_inference_request_success_total{model=\"cls\",version=\"1\"} 6"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("kiln_inference_count_total{model=\"cls\",version=\"1\"} 8"),
            std::string::npos);
  EXPECT_NE(metrics.find("kiln_inference_batch_size_bucket{model=\"cls\",version=\"1\",le=\"+Inf\"}"),
            std::string::npos);
}

// A bounded queue answers 503 when full, never anything else; the rest succeed.
TEST(Serve, FullQueueAnswers503) {
  Repo repo(R"({"max_batch_size": 8, "dynamic_batching": false, "max_queue_size": 1})");
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  const Tensor input = MakeInput(8, 9);
  constexpr int kClients = 16;
  std::atomic<int> ok{0}, unavailable{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      httplib::Client cli("127.0.0.1", server->http_port());
      cli.set_read_timeout(60, 0);
      auto r = PostBinary(cli, "/v2/models/cls/infer", input, true);
      if (r && r->status == 200) {
        ++ok;
      } else if (r && r->status == 503 &&
                 json::parse(r->body)["error"].get<std::string>().find("queue full") !=
                     std::string::npos) {
        ++unavailable;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(unavailable.load(), 1);
}

TEST(Serve, MetricsEndpointIsPrometheusText) {
  Repo repo;
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  auto r = cli.Post("/v2/models/cls/infer", kJsonHeaders, InferBody(MakeInput(2, 3)).dump(),
                    "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  r = cli.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* line :
       {"# TYPE kiln_inference_request_success_total counter",
        "kiln_inference_request_success_total{model=\"cls\",version=\"1\"} 1",
        "kiln_inference_count_total{model=\"cls\",version=\"1\"} 2",
        "# TYPE kiln_inference_queue_duration_us histogram",
        "kiln_inference_compute_duration_us_count{model=\"cls\",version=\"1\"} 1",
        "kiln_inference_batch_size_bucket{model=\"cls\",version=\"1\",le=\"2\"} 1",
        "kiln_inference_batch_size_bucket{model=\"cls\",version=\"1\",le=\"1\"} 0"}) {
    EXPECT_NE(r->body.find(line), std::string::npos) << line << "\n" << r->body;
  }
}

// Shutdown while a request waits in the batch queue: it still completes with 200, and the
// server refuses connections afterwards.
TEST(Serve, ShutdownDrainsInFlightRequests) {
  Repo repo(R"({"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 2000000}})");
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  const int port = server->http_port();
  const Tensor input = MakeInput(1, 77);
  const auto expected = Reference(input);
  int status = 0;
  std::vector<float> got;
  std::thread client([&] {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(60, 0);
    auto r = cli.Post("/v2/models/cls/infer", kJsonHeaders, InferBody(input).dump(),
                      "application/json");
    if (!r) return;
    status = r->status;
    if (status == 200) got = OutputData(json::parse(r->body));
  });
  // Wait until the request is queued.
  for (int i = 0; i < 500; ++i) {
    if (server->repository().Find("cls")->pending() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(server->repository().Find("cls")->pending(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  server->Shutdown();
  client.join();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(got, expected);
  // It did not wait the whole 2 s queue delay.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.9);
  httplib::Client after("127.0.0.1", port);
  EXPECT_FALSE(after.Get("/v2/health/live"));
}

// A SavedModel directory as a version directory (fixture; skipped when missing).
TEST(Serve, SavedModelRepository) {
  const char* env = std::getenv("KILN_FIXTURES_DIR");
  const fs::path fixtures = env ? fs::path(env) : fs::path(KILN_SOURCE_DIR) / ".." / "shared" / "fixtures";
  const fs::path sm = fixtures / "saved_model" / "regression";
  if (!fs::exists(sm / "saved_model.pb")) GTEST_SKIP() << "fixture missing: " << sm;
  Repo repo;
  fs::remove_all(repo.dir() / "cls");
  fs::create_directories(repo.dir() / "reg");
  fs::create_directory_symlink(fs::absolute(sm), repo.dir() / "reg" / "1");
  auto server = StartServer(repo.path());
  ASSERT_TRUE(server);
  httplib::Client cli("127.0.0.1", server->http_port());
  auto r = cli.Get("/v2/models/reg");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto m = json::parse(r->body);
  EXPECT_EQ(m["platform"], "tensorflow_savedmodel");
  Model* model = server->repository().Find("reg");
  ASSERT_NE(model, nullptr);
  const TensorInfo& in = model->inputs()[0];
  ASSERT_EQ(in.dtype, DataType::kFloat32);
  std::vector<int64_t> dims;
  for (int64_t d : in.shape.dims()) dims.push_back(d < 0 ? 4 : d);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  const Tensor x = Tensor::FromVector(RandomData(static_cast<size_t>(n), 5), dims);
  json body{{"inputs", json::array({json{{"name", in.name},
                                         {"datatype", "FP32"},
                                         {"shape", dims},
                                         {"data", std::vector<float>(x.data<float>(),
                                                                     x.data<float>() + n)}}})}};
  r = cli.Post("/v2/models/reg/infer", kJsonHeaders, body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto out = model->session().Run({{in.name, x}});
  ASSERT_TRUE(out.ok()) << out.status();
  auto j = json::parse(r->body);
  std::vector<float> got;
  for (const auto& v : j["outputs"][0]["data"]) got.push_back(v.get<float>());
  const Tensor& ref = (*out)[0];
  EXPECT_EQ(got, std::vector<float>(ref.data<float>(), ref.data<float>() + ref.num_elements()));
}

}  // namespace
}  // namespace kiln::serve

namespace kiln::serve {
namespace {

// The CLI: `kiln serve` prints its port, serves, and on SIGTERM drains and exits 0.
TEST(ServeCli, ServesAndExitsCleanlyOnSigterm) {
  const std::string kiln = std::string(KILN_BINARY_DIR) + "/bin/kiln";
  if (::access(kiln.c_str(), X_OK) != 0) GTEST_SKIP() << kiln << " not built";
  Repo repo;
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const std::string repo_path = repo.path();  // no allocation between fork and exec
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(kiln.c_str(), "kiln", "serve", "--model-repository", repo_path.c_str(), "--host",
            "127.0.0.1", "--http-port", "0", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  int port = -1;
  char buf[256];
  while (port < 0) {
    const ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    const auto at = text.find("serving HTTP on 127.0.0.1:");
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      port = std::stoi(text.substr(at + std::strlen("serving HTTP on 127.0.0.1:")));
    }
  }
  ASSERT_GT(port, 0) << text;
  httplib::Client cli("127.0.0.1", port);
  const Tensor input = MakeInput(1, 41);
  auto r = cli.Post("/v2/models/cls/infer", kJsonHeaders, InferBody(input).dump(),
                    "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(OutputData(json::parse(r->body)), Reference(input));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  while (true) {
    const ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
  EXPECT_NE(text.find("stopped"), std::string::npos) << text;
}

// --- gRPC (GRPCInferenceService) ---------------------------------------------------------------

TEST(ServeGrpc, EndpointsAndInferMatchSessionRun) {
  Repo repo;
  ServerOptions o;
  o.grpc_port = 0;
  auto server = StartServer(repo.path(), o);
  ASSERT_TRUE(server);
  ASSERT_GT(server->grpc_port(), 0);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    inference::ServerLiveResponse r;
    ASSERT_TRUE(stub->ServerLive(&ctx, {}, &r).ok());
    EXPECT_TRUE(r.live());
  }
  {
    grpc::ClientContext ctx;
    inference::ServerReadyResponse r;
    ASSERT_TRUE(stub->ServerReady(&ctx, {}, &r).ok());
    EXPECT_TRUE(r.ready());
  }
  {
    grpc::ClientContext ctx;
    inference::ServerMetadataResponse r;
    ASSERT_TRUE(stub->ServerMetadata(&ctx, {}, &r).ok());
    EXPECT_EQ(r.name(), "kiln");
  }
  {
    grpc::ClientContext ctx;
    inference::ModelReadyRequest q;
    q.set_name("cls");
    inference::ModelReadyResponse r;
    ASSERT_TRUE(stub->ModelReady(&ctx, q, &r).ok());
    EXPECT_TRUE(r.ready());
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest q;
    q.set_name("cls");
    q.set_version("1");
    inference::ModelMetadataResponse r;
    ASSERT_TRUE(stub->ModelMetadata(&ctx, q, &r).ok());
    ASSERT_EQ(r.inputs_size(), 1);
    EXPECT_EQ(r.inputs(0).datatype(), "FP32");
    EXPECT_EQ(r.inputs(0).shape(0), -1);
    EXPECT_EQ(r.outputs(0).name(), kOut);
  }
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest q;
    q.set_name("nope");
    inference::ModelMetadataResponse r;
    EXPECT_EQ(stub->ModelMetadata(&ctx, q, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  const Tensor input = MakeInput(2, 31);
  const auto expected = Reference(input);
  auto make_request = [&](bool raw) {
    inference::ModelInferRequest q;
    q.set_model_name("cls");
    q.set_id("g1");
    auto* in = q.add_inputs();
    in->set_name("x");
    in->set_datatype("FP32");
    for (int64_t d : input.dims()) in->add_shape(d);
    if (raw) {
      q.add_raw_input_contents(std::string(static_cast<const char*>(input.raw_data()),
                                           input.nbytes()));
    } else {
      for (int64_t i = 0; i < input.num_elements(); ++i) {
        in->mutable_contents()->add_fp32_contents(input.data<float>()[i]);
      }
    }
    return q;
  };
  for (bool raw : {true, false}) {
    grpc::ClientContext ctx;
    inference::ModelInferResponse r;
    grpc::Status st = stub->ModelInfer(&ctx, make_request(raw), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(r.id(), "g1");
    ASSERT_EQ(r.outputs_size(), 1);
    EXPECT_EQ(r.outputs(0).name(), kOut);
    EXPECT_EQ(r.outputs(0).shape_size(), 2);
    ASSERT_EQ(r.raw_output_contents_size(), 1);
    ASSERT_EQ(r.raw_output_contents(0).size(), expected.size() * 4);
    std::vector<float> got(expected.size());
    std::memcpy(got.data(), r.raw_output_contents(0).data(), got.size() * 4);
    EXPECT_EQ(got, expected) << (raw ? "raw" : "typed");
  }
  // Errors: unknown model, wrong dtype, short raw contents.
  {
    grpc::ClientContext ctx;
    auto q = make_request(true);
    q.set_model_name("nope");
    inference::ModelInferResponse r;
    EXPECT_EQ(stub->ModelInfer(&ctx, q, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    auto q = make_request(true);
    q.mutable_inputs(0)->set_datatype("INT32");
    inference::ModelInferResponse r;
    EXPECT_EQ(stub->ModelInfer(&ctx, q, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    auto q = make_request(true);
    q.mutable_raw_input_contents(0)->resize(100);
    inference::ModelInferResponse r;
    EXPECT_EQ(stub->ModelInfer(&ctx, q, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    auto q = make_request(false);
    q.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->RemoveLast();
    inference::ModelInferResponse r;
    EXPECT_EQ(stub->ModelInfer(&ctx, q, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace kiln::serve
