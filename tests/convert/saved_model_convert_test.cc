// Converted TensorFlow models written back as TensorFlow files (issue 7):
//   - every SavedModel and checkpoint fixture: convert -> save as a SavedModel -> load (by tag
//     and signature) -> run gives the unconverted graph's outputs (rel. L2 <= 1e-5) and the
//     recorded ones (manifest tolerance), fed and fetched by signature key and by tensor name,
//     with the engines actually running ("ready");
//   - every frozen GraphDef fixture: convert -> save .pb -> load -> run, the same;
//   - `kiln freeze` on the checkpoint fixture, `kiln convert SAVED_MODEL --tags --signature`;
//   - saving the same conversion twice gives byte-identical saved_model.pb and assets;
//   - a written SavedModel whose engine asset is missing (clear error) or corrupted (plan
//     rejected, the native segment runs), an unknown tag on a written SavedModel, .pb for an
//     ONNX model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_runner.h"
#include "io/fixture_util.h"
#include "io/npy/npy.h"
#include "io/tf/freeze.h"
#include "io/tf/graphdef_import.h"
#include "io/tf/saved_model.h"
#include "ir/graph.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

using testing::FixtureDirs;
using testing::FixturesDir;
using testing::ReadManifest;

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("kiln_sm_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

double RelL2(const Tensor& got, const Tensor& want) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const double g = got.GetAsDouble(i), w = want.GetAsDouble(i);
    if (std::isnan(g) != std::isnan(w)) return INFINITY;
    num += (g - w) * (g - w);
    den += w * w;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct FixtureIo {
  std::vector<std::string> in_names, in_keys, out_names, out_keys;
  std::vector<Tensor> inputs, expected;
  std::vector<std::pair<double, double>> tol;  // rtol, atol per output
};

FixtureIo ReadIo(const fs::path& dir, const nlohmann::json& m) {
  FixtureIo io;
  for (const auto& in : m.at("inputs")) {
    io.in_names.push_back(in.at("name").get<std::string>());
    io.in_keys.push_back(in.value("signature_key", io.in_names.back()));
    auto t = ReadNpyFile((dir / in.at("file").get<std::string>()).string());
    EXPECT_TRUE(t.ok()) << t.status();
    io.inputs.push_back(t.ok() ? *t : Tensor());
  }
  for (const auto& o : m.at("outputs")) {
    io.out_names.push_back(o.at("name").get<std::string>());
    io.out_keys.push_back(o.value("signature_key", io.out_names.back()));
    auto t = ReadNpyFile((dir / o.at("file").get<std::string>()).string());
    EXPECT_TRUE(t.ok()) << t.status();
    io.expected.push_back(t.ok() ? *t : Tensor());
    const auto& tol = o.contains("tolerance") && !o.at("tolerance").is_null()
                          ? o.at("tolerance")
                          : m.at("suggested_tolerance");
    io.tol.emplace_back(tol.at("rtol").get<double>(), tol.at("atol").get<double>());
  }
  return io;
}

StatusOr<std::vector<Tensor>> RunIo(const Session& s, const FixtureIo& io, bool by_key) {
  Feeds feeds;
  for (size_t k = 0; k < io.inputs.size(); ++k) {
    feeds.emplace_back(by_key ? io.in_keys[k] : io.in_names[k], io.inputs[k]);
  }
  return s.Run(feeds, by_key ? io.out_keys : io.out_names);
}

// "" when `got` matches the recorded outputs within tolerance and `native` within rel. L2.
std::string Compare(const std::vector<Tensor>& got, const std::vector<Tensor>& native,
                    const FixtureIo& io) {
  if (got.size() != io.expected.size()) return "wrong number of outputs";
  for (size_t k = 0; k < got.size(); ++k) {
    const Tensor& g = got[k];
    const Tensor& ref = io.expected[k];
    if (g.dtype() != ref.dtype() || g.dims() != ref.dims()) {
      return "output " + io.out_names[k] + ": got " + g.TypeString() + ", recorded " +
             ref.TypeString();
    }
    const double rel = RelL2(g, native[k]);
    if (!(rel <= 1e-5)) {
      return "output " + io.out_names[k] + ": rel. L2 vs unconverted " + std::to_string(rel);
    }
    for (int64_t i = 0; i < ref.num_elements(); ++i) {
      const double a = g.GetAsDouble(i), b = ref.GetAsDouble(i);
      if (!(std::fabs(a - b) <= io.tol[k].second + io.tol[k].first * std::fabs(b))) {
        return "output " + io.out_names[k] + "[" + std::to_string(i) + "] = " +
               std::to_string(a) + ", recorded " + std::to_string(b);
      }
    }
  }
  return "";
}

// The fixtures are small: every supported node goes into an engine, built for the fixture's
// input shapes (SavedModel signatures often leave them unknown).
ConversionParams SmallSegments(const FixtureIo* io = nullptr) {
  ConversionParams p;
  p.minimum_segment_size = 1;
  for (size_t k = 0; io != nullptr && k < io->inputs.size(); ++k) {
    p.input_shapes[io->in_names[k]] = io->inputs[k].dims();
  }
  return p;
}

// Engines of the model at `path` that are not "ready" (their plan rejected or missing).
std::string EnginesNotReady(const std::string& path, const LoadOptions& load, int* engines) {
  InspectOptions opts;
  opts.load = load;
  auto info = InspectModel(path, opts);
  if (!info.ok()) return info.status().ToString();
  *engines = static_cast<int>(info->engines.size());
  std::string bad;
  for (const auto& e : info->engines) {
    if (e.status != "ready") bad += e.node + ": " + e.status + "; ";
  }
  return bad;
}

LoadOptions LoadOptionsOf(const nlohmann::json& m) {
  LoadOptions load;
  load.saved_model_tags.clear();
  for (const auto& t : m.at("tags")) load.saved_model_tags.push_back(t.get<std::string>());
  load.saved_model_signature_key = m.at("signature").get<std::string>();
  return load;
}

TEST(SavedModelConvert, FixturesRoundTripThroughWrittenSavedModel) {
  auto dirs = FixtureDirs("saved_model");
  if (dirs.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/saved_model";
  int total_engines = 0;
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto m = ReadManifest(dir);
    const FixtureIo io = ReadIo(dir, m);
    const LoadOptions load = LoadOptionsOf(m);
    const std::string model = (dir / m.at("model_path").get<std::string>()).string();
    SessionOptions so;
    so.load = load;
    auto native = Session::Load(model, so);
    ASSERT_TRUE(native.ok()) << native.status();
    auto want = RunIo(**native, io, false);
    ASSERT_TRUE(want.ok()) << want.status();

    ConversionParams params = SmallSegments(&io);
    params.input_saved_model_tags = load.saved_model_tags;
    params.input_saved_model_signature_key = load.saved_model_signature_key;
    auto converted = CreateInferenceGraph(model, params);
    ASSERT_TRUE(converted.ok()) << converted.status();
    TempDir tmp;
    const std::string out = (tmp.path() / "converted").string();
    ASSERT_TRUE(converted->Save(out).ok()) << converted->Save(out);
    EXPECT_TRUE(fs::is_regular_file(fs::path(out) / "saved_model.pb"));
    EXPECT_FALSE(fs::exists(out + ".tmp." + std::to_string(::getpid())));
    EXPECT_EQ(fs::is_directory(fs::path(out) / "assets") &&
                  !fs::is_empty(fs::path(out) / "assets"),
              !converted->summary().engines.empty());

    auto loaded = Session::Load(out, so);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    for (bool by_key : {false, true}) {
      auto got = RunIo(**loaded, io, by_key);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(Compare(*got, *want, io), "") << (by_key ? "by signature key" : "by name");
    }
    int engines = 0;
    EXPECT_EQ(EnginesNotReady(out, load, &engines), "");
    EXPECT_EQ(engines, static_cast<int>(converted->summary().engines.size()));
    total_engines += engines;
  }
  EXPECT_GT(total_engines, 0) << "no fixture got an engine: the test would prove nothing";
}

TEST(SavedModelConvert, CheckpointFixtureFreezeConvertSave) {
  auto dirs = FixtureDirs("checkpoint");
  if (dirs.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/checkpoint";
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto m = ReadManifest(dir);
    const FixtureIo io = ReadIo(dir, m);
    const std::string meta = (dir / m.at("model_path").get<std::string>()).string();
    TempDir tmp;
    // The API and the CLI freeze to the same file contents.
    const std::string api_pb = (tmp.path() / "api.pb").string();
    const std::string cli_pb = (tmp.path() / "cli.pb").string();
    std::string outs;
    for (const auto& n : io.out_names) outs += (outs.empty() ? "" : ",") + n;
    ASSERT_TRUE(FreezeMetaGraphToFile(meta, dir.string(), io.out_names, api_pb).ok());
    auto r = testing::Kiln("freeze --meta " + meta + " --checkpoint " + dir.string() +
                           " --outputs " + outs + " -o " + cli_pb);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(ReadBytes(api_pb), ReadBytes(cli_pb));
    // Errors: clear, exit 1, nothing written.
    const std::string never = (tmp.path() / "never.pb").string();
    r = testing::Kiln("freeze --meta " + meta + " --checkpoint " + dir.string() +
                      "/nope --outputs " + outs + " -o " + never);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("nope"), std::string::npos) << r.output;
    r = testing::Kiln("freeze --meta " + meta + " --checkpoint " + dir.string() +
                      " --outputs no_such_node -o " + never);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("no_such_node"), std::string::npos) << r.output;
    EXPECT_EQ(testing::Kiln("freeze --meta " + meta + " -o " + never).exit_code, 2);
    EXPECT_FALSE(fs::exists(never));
    auto frozen = Session::Load(cli_pb);
    ASSERT_TRUE(frozen.ok()) << frozen.status();
    auto want = RunIo(**frozen, io, false);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(Compare(*want, *want, io), "");  // the frozen graph matches the recording

    // frozen .pb -> convert -> SavedModel and .pb -> load -> run.
    auto converted = CreateInferenceGraph(cli_pb, SmallSegments(&io));
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_FALSE(converted->summary().engines.empty());
    for (const std::string& out : {(tmp.path() / "sm").string(), (tmp.path() / "c.pb").string()}) {
      SCOPED_TRACE(out);
      ASSERT_TRUE(converted->Save(out).ok()) << converted->Save(out);
      auto loaded = Session::Load(out);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      auto got = RunIo(**loaded, io, false);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(Compare(*got, *want, io), "");
      int engines = 0;
      EXPECT_EQ(EnginesNotReady(out, {}, &engines), "");
      EXPECT_EQ(engines, static_cast<int>(converted->summary().engines.size()));
    }
  }
}

TEST(SavedModelConvert, GraphDefFixturesRoundTripThroughPb) {
  auto dirs = FixtureDirs("graphdef");
  if (dirs.empty()) GTEST_SKIP() << "no fixtures under " << FixturesDir() << "/graphdef";
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.string());
    const auto m = ReadManifest(dir);
    const FixtureIo io = ReadIo(dir, m);
    const std::string model = (dir / m.at("model_path").get<std::string>()).string();
    auto native = Session::Load(model);
    ASSERT_TRUE(native.ok()) << native.status();
    auto want = RunIo(**native, io, false);
    ASSERT_TRUE(want.ok()) << want.status();
    ConversionParams params = SmallSegments(&io);
    auto converted = CreateInferenceGraph(model, params);
    ASSERT_TRUE(converted.ok()) << converted.status();
    TempDir tmp;
    const std::string out = (tmp.path() / "converted.pb").string();
    ASSERT_TRUE(converted->Save(out).ok()) << converted->Save(out);
    auto loaded = Session::Load(out);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto got = RunIo(**loaded, io, false);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Compare(*got, *want, io), "");
    // An engine whose boundary splits one NodeDef's IR nodes (gru/lstm: Unpack -> Split +
    // Squeezes, each Squeeze its own 1-node segment here) is written as its native nodes.
    int engines = 0;
    EXPECT_EQ(EnginesNotReady(out, {}, &engines), "");
    EXPECT_GE(engines, 1);
    EXPECT_LE(engines, static_cast<int>(converted->summary().engines.size()));
    std::printf("[ graphdef ] %-12s %3zu engines converted, %3d in the written .pb\n",
                dir.filename().c_str(), converted->summary().engines.size(), engines);
  }
}

// The regression SavedModel fixture converted with small segments, for the tests below.
StatusOr<ConvertedModel> ConvertRegression(fs::path* dir, nlohmann::json* m) {
  *dir = fs::path(FixturesDir()) / "saved_model" / "regression";
  if (!fs::is_regular_file(*dir / "manifest.json")) return NotFound("no regression fixture");
  *m = ReadManifest(*dir);
  const FixtureIo io = ReadIo(*dir, *m);
  return CreateInferenceGraph(dir->string(), SmallSegments(&io));
}

TEST(SavedModelConvert, SavingTwiceIsByteIdentical) {
  fs::path dir;
  nlohmann::json m;
  auto converted = ConvertRegression(&dir, &m);
  if (!converted.ok()) GTEST_SKIP() << converted.status();
  ASSERT_FALSE(converted->summary().engines.empty());
  TempDir tmp;
  const fs::path a = tmp.path() / "a", b = tmp.path() / "b";
  ASSERT_TRUE(converted->Save(a.string()).ok());
  // A second, independent conversion too.
  const FixtureIo io = ReadIo(dir, m);
  auto again = CreateInferenceGraph(dir.string(), SmallSegments(&io));
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->Save(b.string()).ok());
  EXPECT_EQ(ReadBytes(a / "saved_model.pb"), ReadBytes(b / "saved_model.pb"));
  for (const auto& e : fs::directory_iterator(a / "assets")) {
    EXPECT_EQ(ReadBytes(e.path()), ReadBytes(b / "assets" / e.path().filename()));
  }
  // Saving over an existing SavedModel replaces it ("dir/" names the same directory).
  ASSERT_TRUE(converted->Save(b.string() + "/").ok());
  EXPECT_EQ(ReadBytes(a / "saved_model.pb"), ReadBytes(b / "saved_model.pb"));
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
    EXPECT_EQ(e.path().string().find(".old."), std::string::npos) << e.path();
  }
}

TEST(SavedModelConvertRobustness, MissingOrCorruptEngineAsset) {
  fs::path dir;
  nlohmann::json m;
  auto converted = ConvertRegression(&dir, &m);
  if (!converted.ok()) GTEST_SKIP() << converted.status();
  ASSERT_FALSE(converted->summary().engines.empty());
  const FixtureIo io = ReadIo(dir, m);
  TempDir tmp;
  const fs::path out = tmp.path() / "sm";
  ASSERT_TRUE(converted->Save(out.string()).ok());
  std::vector<fs::path> assets;
  for (const auto& e : fs::directory_iterator(out / "assets")) assets.push_back(e.path());
  ASSERT_FALSE(assets.empty());
  const std::string plan = ReadBytes(assets[0]);

  // Corrupted: the plan is rejected, the native segment runs and gives the same outputs.
  std::string bad = plan;
  bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x5a);
  std::ofstream(assets[0], std::ios::binary | std::ios::trunc) << bad;
  auto loaded = Session::Load(out.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto got = RunIo(**loaded, io, true);
  ASSERT_TRUE(got.ok()) << got.status();
  auto ref = Session::Load(dir.string());
  ASSERT_TRUE(ref.ok());
  auto want = RunIo(**ref, io, true);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(Compare(*got, *want, io), "");
  auto info = InspectModel(out.string());
  ASSERT_TRUE(info.ok()) << info.status();
  bool rejected = false;
  for (const auto& e : info->engines) rejected |= e.status.rfind("plan rejected", 0) == 0;
  EXPECT_TRUE(rejected);

  // Truncated to nothing: also rejected, no crash.
  std::ofstream(assets[0], std::ios::binary | std::ios::trunc) << "";
  EXPECT_TRUE(Session::Load(out.string()).ok());

  // Missing: a clear error naming the file.
  fs::remove(assets[0]);
  auto missing = Session::Load(out.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(assets[0].filename().string()), std::string::npos)
      << missing.status();
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos) << missing.status();
}

TEST(SavedModelConvertRobustness, WrittenModelTagsAndFormats) {
  fs::path dir;
  nlohmann::json m;
  auto converted = ConvertRegression(&dir, &m);
  if (!converted.ok()) GTEST_SKIP() << converted.status();
  TempDir tmp;
  const fs::path out = tmp.path() / "sm";
  ASSERT_TRUE(converted->Save(out.string()).ok());
  SessionOptions so;
  so.load.saved_model_tags = {"train"};
  auto s = Session::Load(out.string(), so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("available tag sets: {serve}"), std::string::npos)
      << s.status();
  so.load.saved_model_tags = {"serve"};
  so.load.saved_model_signature_key = "nope";
  s = Session::Load(out.string(), so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("serving_default"), std::string::npos) << s.status();

  // A truncated saved_model.pb of a written model.
  const std::string pb = ReadBytes(out / "saved_model.pb");
  std::ofstream(out / "saved_model.pb", std::ios::binary | std::ios::trunc)
      << pb.substr(0, pb.size() / 3);
  EXPECT_FALSE(Session::Load(out.string()).ok());

  // An ONNX-imported model cannot become a GraphDef.
  auto onnx = CreateInferenceGraph(std::string(KILN_SOURCE_DIR) + "/models/ppocr_cls/model.onnx",
                                   ConversionParams());
  if (onnx.ok()) {
    Status st = onnx->Save((tmp.path() / "x.pb").string());
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("not imported from TensorFlow"), std::string::npos) << st;
    EXPECT_FALSE(fs::exists(tmp.path() / "x.pb"));
  }
}

TEST(SavedModelConvertRobustness, MalformedKilnEngineOpNodeDefs) {
  fs::path dir;
  nlohmann::json m;
  auto converted = ConvertRegression(&dir, &m);
  if (!converted.ok()) GTEST_SKIP() << converted.status();
  TempDir tmp;
  const fs::path good = tmp.path() / "good.pb";
  ASSERT_TRUE(converted->Save(good.string()).ok());
  tfpb::GraphDef gd;
  ASSERT_TRUE(gd.ParseFromString(ReadBytes(good)));
  int engine = -1;
  for (int i = 0; i < gd.node_size(); ++i) {
    if (gd.node(i).op() == "KilnEngineOp") engine = i;
  }
  ASSERT_GE(engine, 0);
  struct Case {
    const char* what;
    std::function<void(tfpb::NodeDef*)> edit;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"segment bytes", [](tfpb::NodeDef* n) { (*n->mutable_attr())["serialized_segment"].set_s("junk"); },
       "serialized_segment"},
      {"no segment", [](tfpb::NodeDef* n) { n->mutable_attr()->erase("serialized_segment"); },
       "serialized_segment"},
      {"no OutT", [](tfpb::NodeDef* n) { n->mutable_attr()->erase("OutT"); }, "OutT"},
      {"InT count", [](tfpb::NodeDef* n) {
         (*n->mutable_attr())["InT"].mutable_list()->add_type(tfpb::DT_FLOAT); }, "InT"},
      {"shapes count", [](tfpb::NodeDef* n) {
         (*n->mutable_attr())["output_shapes"].mutable_list()->clear_shape(); }, "output_shapes"},
      {"plan bytes", [](tfpb::NodeDef* n) {
         (*n->mutable_attr())["serialized_engine"].set_s("not a plan"); }, nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    tfpb::GraphDef bad = gd;
    c.edit(bad.mutable_node(engine));
    const fs::path path = tmp.path() / "bad.pb";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad.SerializeAsString();
    auto s = Session::Load(path.string());
    if (c.expect == nullptr) {  // a bad plan: rejected, the native segment runs
      EXPECT_TRUE(s.ok()) << s.status();
      continue;
    }
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find(c.expect), std::string::npos) << s.status();
    EXPECT_NE(s.status().message().find("kiln_engine_0"), std::string::npos) << s.status();
  }
}

TEST(SavedModelConvert, CliConvertSavedModelWithTagsAndSignature) {
  const fs::path dir = fs::path(FixturesDir()) / "saved_model" / "module_with_multiple_signatures";
  const fs::path fixture =
      fs::path(FixturesDir()) / "saved_model" / "module_with_multiple_signatures__timestwo";
  if (!fs::is_regular_file(fixture / "manifest.json")) GTEST_SKIP() << "fixture missing";
  const auto m = ReadManifest(fixture);
  const FixtureIo io = ReadIo(fixture, m);
  TempDir tmp;
  const std::string out = (tmp.path() / "out").string();
  auto r = testing::Kiln("convert " + dir.string() +
                         " --tags serve --signature timestwo --minimum-segment-size 1 "
                         "--input-shape x=3 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  SessionOptions so;
  so.load.saved_model_signature_key = "timestwo";
  auto s = Session::Load(out, so);
  ASSERT_TRUE(s.ok()) << s.status();
  auto got = RunIo(**s, io, true);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Compare(*got, io.expected, io), "");
  // kiln run with --signature, feeding by signature key.
  r = testing::Kiln("run " + out + " --signature timestwo --input x=" +
                    (fixture / "input_0.npy").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = testing::Kiln("inspect " + out + " --tags serve --signature timestwo");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = testing::Kiln("inspect " + out + " --tags gpu");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("available tag sets"), std::string::npos) << r.output;
}

TEST(SavedModelConvert, CliConvertGraphDefKeepsFormat) {
  const fs::path fixture = fs::path(FixturesDir()) / "graphdef" / "regression";
  if (!fs::is_regular_file(fixture / "manifest.json")) GTEST_SKIP() << "fixture missing";
  const auto m = ReadManifest(fixture);
  const FixtureIo io = ReadIo(fixture, m);
  TempDir tmp;
  const std::string out = (tmp.path() / "out.pb").string();
  auto r = testing::Kiln("convert " + (fixture / "frozen.pb").string() +
                         " --minimum-segment-size 1 --input-shape X=8 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::Kiln("inspect " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tf_graphdef"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("status: ready"), std::string::npos) << r.output;
  auto s = Session::Load(out);
  ASSERT_TRUE(s.ok()) << s.status();
  auto got = RunIo(**s, io, false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Compare(*got, io.expected, io), "");
  // .pbtxt is text; the ONNX form is still there for TF models.
  r = testing::Kiln("convert " + (fixture / "frozen.pb").string() + " --minimum-segment-size 1 "
                    "--input-shape X=8 -o " + (tmp.path() / "out.pbtxt").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(ReadBytes(tmp.path() / "out.pbtxt").find("op: \"KilnEngineOp\""), std::string::npos);
  EXPECT_TRUE(Session::Load((tmp.path() / "out.pbtxt").string()).ok());
  r = testing::Kiln("convert " + (fixture / "frozen.pb").string() + " -o " +
                    (tmp.path() / "out.onnx").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Session::Load((tmp.path() / "out.onnx").string()).ok());
}

}  // namespace
}  // namespace kiln
