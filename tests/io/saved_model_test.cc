// TensorBundle reader, SavedModel loading and MetaGraph freezing: values read from the fixture
// checkpoints, and corrupted inputs (flipped data byte, truncated index, missing shard, unknown
// tag, signature naming a missing tensor) giving clear errors.
#include "io/tf/saved_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/tf/freeze.h"
#include "io/tf/tensor_bundle.h"
#include "tensorflow.pb.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string FixturesDir() {
  const char* env = std::getenv("KILN_FIXTURES_DIR");
  return env ? std::string(env) : std::string(KILN_SOURCE_DIR) + "/../shared/fixtures";
}

fs::path Fixture(const std::string& rel) { return fs::path(FixturesDir()) / rel; }

#define REQUIRE_FIXTURE(path) \
  if (!fs::exists(path)) GTEST_SKIP() << "fixture missing: " << (path)

// A writable copy of a fixture directory (shared/ is read-only).
class TempCopy {
 public:
  explicit TempCopy(const fs::path& src) {
    // The process id too: ctest runs each test in its own process, two at a time, where the
    // seed and the counter are the same (0, 0) and one test's copy replaced the other's.
    dir_ = fs::temp_directory_path() / ("kiln_sm_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter_++) + "_" + src.filename().string());
    fs::remove_all(dir_);
    fs::copy(src, dir_, fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(dir_)) {
      fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add);
    }
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
  }
  ~TempCopy() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void WriteAll(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

TEST(Crc32c, KnownVectorsAndMask) {
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c(0, "", 0), 0u);
  // Extending in pieces equals one pass.
  EXPECT_EQ(Crc32c(Crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  EXPECT_NE(MaskCrc32c(0xE3069283u), 0xE3069283u);
}

TEST(TensorBundle, ReadsTf1Checkpoint) {
  const fs::path prefix = Fixture("checkpoint/regression/model");
  REQUIRE_FIXTURE(prefix.string() + ".index");
  auto r = TensorBundleReader::Open(prefix.string());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header().num_shards(), 1);
  EXPECT_TRUE(r->Contains("W"));
  EXPECT_TRUE(r->Contains("b"));
  auto w = r->Read("W");
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->dtype(), DataType::kFloat32);
  ASSERT_EQ(w->num_elements(), 1);
  EXPECT_FLOAT_EQ(w->data<float>()[0], 0.21396178f);
  auto b = r->Read("b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FLOAT_EQ(b->data<float>()[0], 1.0495254f);
  auto missing = r->Read("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(TensorBundle, ReadsTf2CheckpointWithStringsAndInts) {
  const fs::path prefix = Fixture("saved_model/int64_multiply/variables/variables");
  REQUIRE_FIXTURE(prefix.string() + ".index");
  auto r = TensorBundleReader::Open(prefix.string());
  ASSERT_TRUE(r.ok()) << r.status();
  int ints = 0;
  for (const auto& key : r->keys()) {
    auto e = r->Entry(key);
    ASSERT_TRUE(e.ok());
    auto t = r->Read(key);
    ASSERT_TRUE(t.ok()) << key << ": " << t.status();
    if (e->dtype() == tfpb::DT_INT64) {
      ++ints;
      ASSERT_EQ(t->num_elements(), 1);
      const int64_t v = t->data<int64_t>()[0];
      EXPECT_TRUE(v == 2 || v == 3) << key << " = " << v;
    }
  }
  EXPECT_EQ(ints, 2);
  // TF2 checkpoints store the object graph as a serialized string scalar.
  ASSERT_TRUE(r->Contains("_CHECKPOINTABLE_OBJECT_GRAPH"));
  auto og = r->ReadProto("_CHECKPOINTABLE_OBJECT_GRAPH");
  ASSERT_TRUE(og.ok()) << og.status();
  ASSERT_EQ(og->string_val_size(), 1);
  EXPECT_GT(og->string_val(0).size(), 10u);
}

TEST(TensorBundle, FlippedDataByteIsDataLossNamingTensor) {
  const fs::path src = Fixture("checkpoint/regression");
  REQUIRE_FIXTURE(src);
  TempCopy copy(src);
  const fs::path data = copy.dir() / "model.data-00000-of-00001";
  std::string bytes = ReadAll(data);
  ASSERT_FALSE(bytes.empty());
  const std::string prefix = (copy.dir() / "model").string();
  auto r = TensorBundleReader::Open(prefix);
  ASSERT_TRUE(r.ok()) << r.status();
  auto e = r->Entry("W");
  ASSERT_TRUE(e.ok());
  bytes[e->offset()] ^= 0x40;
  WriteAll(data, bytes);
  auto w = r->Read("W");
  EXPECT_EQ(w.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(w.status().message().find("'W'"), std::string::npos) << w.status();
  EXPECT_NE(w.status().message().find("checksum"), std::string::npos) << w.status();
  // Freezing through it reports the same.
  auto g = FreezeMetaGraph((copy.dir() / "model.meta").string(), prefix, {"pred:0"});
  EXPECT_EQ(g.status().code(), StatusCode::kDataLoss) << g.status();
}

TEST(TensorBundle, EveryFlippedDataByteIsCaught) {
  const fs::path src = Fixture("saved_model/int64_multiply");
  REQUIRE_FIXTURE(src);
  TempCopy copy(src);
  const fs::path data = copy.dir() / "variables" / "variables.data-00000-of-00001";
  const std::string bytes = ReadAll(data);
  const std::string prefix = (copy.dir() / "variables" / "variables").string();
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x10;
    WriteAll(data, bad);
    auto r = TensorBundleReader::Open(prefix);
    ASSERT_TRUE(r.ok()) << r.status();
    int losses = 0;
    for (const auto& key : r->keys()) {
      auto t = r->ReadProto(key);
      if (!t.ok()) {
        EXPECT_EQ(t.status().code(), StatusCode::kDataLoss) << t.status();
        EXPECT_NE(t.status().message().find("'" + key + "'"), std::string::npos);
        ++losses;
      }
    }
    EXPECT_EQ(losses, 1) << "byte " << i;
  }
  // Through the SavedModel loader: corrupt a variable the signature reads.
  WriteAll(data, bytes);
  auto r = TensorBundleReader::Open(prefix);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string bad = bytes;
  for (const auto& key : r->keys()) {
    if (r->Entry(key)->dtype() == tfpb::DT_INT64) bad[r->Entry(key)->offset()] ^= 0x10;
  }
  WriteAll(data, bad);
  auto g = LoadSavedModel(copy.dir().string());
  EXPECT_EQ(g.status().code(), StatusCode::kDataLoss) << g.status();
}

TEST(TensorBundle, TruncatedOrCorruptIndex) {
  const fs::path src = Fixture("checkpoint/regression");
  REQUIRE_FIXTURE(src);
  TempCopy copy(src);
  const fs::path index = copy.dir() / "model.index";
  const std::string bytes = ReadAll(index);
  const std::string prefix = (copy.dir() / "model").string();
  for (size_t keep : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    WriteAll(index, bytes.substr(0, keep));
    auto r = TensorBundleReader::Open(prefix);
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << keep << ": " << r.status();
  }
  // Every single flipped byte is caught (block checksum, footer or magic) or harmless.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x01;
    WriteAll(index, bad);
    auto r = TensorBundleReader::Open(prefix);
    if (r.ok()) continue;  // e.g. footer padding
    EXPECT_TRUE(r.status().code() == StatusCode::kDataLoss ||
                r.status().code() == StatusCode::kUnimplemented)
        << i << ": " << r.status();
  }
}

TEST(TensorBundle, MissingShard) {
  const fs::path src = Fixture("checkpoint/regression");
  REQUIRE_FIXTURE(src);
  TempCopy copy(src);
  fs::remove(copy.dir() / "model.data-00000-of-00001");
  auto r = TensorBundleReader::Open((copy.dir() / "model").string());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("model.data-00000-of-00001"), std::string::npos)
      << r.status();
  auto sm_src = Fixture("saved_model/times_two_int");
  REQUIRE_FIXTURE(sm_src);
  TempCopy sm(sm_src);
  fs::remove(sm.dir() / "variables" / "variables.data-00000-of-00001");
  auto g = LoadSavedModel(sm.dir().string());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound) << g.status();
}

TEST(SavedModel, UnknownTagListsAvailableTagSets) {
  const fs::path dir = Fixture("saved_model/times_three_float");
  REQUIRE_FIXTURE(dir);
  SavedModelOptions opts;
  opts.tags = {"train"};
  auto g = LoadSavedModel(dir.string(), opts);
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_NE(g.status().message().find("{train}"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("available tag sets: {serve}"), std::string::npos)
      << g.status();
}

TEST(SavedModel, UnknownSignatureListsKeys) {
  const fs::path dir = Fixture("saved_model/module_with_multiple_signatures");
  REQUIRE_FIXTURE(dir);
  SavedModelOptions opts;
  opts.signature_key = "nope";
  auto g = LoadSavedModel(dir.string(), opts);
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_NE(g.status().message().find("serving_default"), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find("timestwo"), std::string::npos) << g.status();
}

TEST(SavedModel, SignatureNamingMissingTensor) {
  const fs::path src = Fixture("saved_model/times_three_float");
  REQUIRE_FIXTURE(src);
  for (const char* bad : {"no_such_node:0", "StatefulPartitionedCall:7"}) {
    TempCopy copy(src);
    tfpb::SavedModel sm;
    ASSERT_TRUE(sm.ParseFromString(ReadAll(copy.dir() / "saved_model.pb")));
    auto& sig = (*sm.mutable_meta_graphs(0)->mutable_signature_def())["serving_default"];
    (*sig.mutable_outputs())["output_0"].set_name(bad);
    WriteAll(copy.dir() / "saved_model.pb", sm.SerializeAsString());
    auto g = LoadSavedModel(copy.dir().string());
    EXPECT_FALSE(g.ok()) << bad;
    EXPECT_NE(g.status().message().find(bad), std::string::npos) << g.status();
  }
}

TEST(SavedModel, TruncatedSavedModelPb) {
  const fs::path src = Fixture("saved_model/times_three_float");
  REQUIRE_FIXTURE(src);
  TempCopy copy(src);
  const std::string bytes = ReadAll(copy.dir() / "saved_model.pb");
  WriteAll(copy.dir() / "saved_model.pb", bytes.substr(0, bytes.size() / 3));
  auto g = LoadSavedModel(copy.dir().string());
  EXPECT_FALSE(g.ok());
}

TEST(SavedModel, Tf2FrozenGraphAndSignatureMetadata) {
  const fs::path dir = Fixture("saved_model/times_three_float");
  REQUIRE_FIXTURE(dir);
  EXPECT_TRUE(IsSavedModelDir(dir.string()));
  EXPECT_FALSE(IsSavedModelDir(Fixture("checkpoint/regression").string()));
  auto g = LoadSavedModel(dir.string());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->inputs, std::vector<std::string>{"serving_default_x:0"});
  EXPECT_EQ(g->outputs, std::vector<std::string>{"StatefulPartitionedCall:0"});
  EXPECT_EQ(ResolveSignatureName(*g, "x"), "serving_default_x:0");
  EXPECT_EQ(ResolveSignatureName(*g, "output_0"), "StatefulPartitionedCall:0");
  EXPECT_EQ(ResolveSignatureName(*g, "other:0"), "other:0");
  EXPECT_EQ(g->metadata["saved_model.tags"], "serve");
  // The variable became a float initializer holding 3.0.
  bool found = false;
  for (const auto& [name, t] : g->initializers) {
    if (t.dtype() == DataType::kFloat32 && t.num_elements() == 1 && t.data<float>()[0] == 3.0f) {
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(FreezeMetaGraph, CheckpointStateAndErrors) {
  const fs::path dir = Fixture("checkpoint/regression");
  REQUIRE_FIXTURE(dir);
  auto p = ResolveCheckpointPrefix(dir.string());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(fs::path(*p), dir / "model");
  auto g = FreezeMetaGraph((dir / "model.meta").string(), dir.string(), {"pred"});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->outputs, std::vector<std::string>{"pred:0"});
  EXPECT_EQ(g->inputs, std::vector<std::string>{"X:0"});  // Y (training label) pruned
  auto bad = FreezeMetaGraph((dir / "model.meta").string(), dir.string(), {"nope:0"});
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("nope"), std::string::npos);
  TempCopy copy(dir);
  fs::remove(copy.dir() / "checkpoint");
  EXPECT_EQ(ResolveCheckpointPrefix(copy.dir().string()).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(ResolveCheckpointPrefix((copy.dir() / "nothere").string()).ok());
}

}  // namespace
}  // namespace kiln
