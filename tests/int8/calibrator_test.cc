// Calibrators on known distributions, the calibration table's file format and its matching.
#include "engine/calibrator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "backends/cpu/cpu_test_util.h"

namespace kiln {
namespace {

Histogram Fill(const std::vector<float>& v, int chunks = 4) {
  Histogram h;
  const size_t step = (v.size() + chunks - 1) / chunks;
  for (size_t at = 0; at < v.size(); at += step) {
    h.Add(v.data() + at, static_cast<int64_t>(std::min(step, v.size() - at)));
  }
  return h;
}

std::vector<float> Uniform(int n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Gaussian N(0,1) with a few outliers at +-50.
std::vector<float> GaussianWithOutliers(int n, int outliers, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  for (int k = 0; k < outliers; ++k) v[(k * 7919) % n] = (k % 2 ? -50.f : 50.f);
  return v;
}

TEST(Histogram, RangeGrowsAndKeepsCounts) {
  Histogram h(16);
  const std::vector<float> a = {0.1f, -0.2f, 0.9f, 1.0f};
  h.Add(a.data(), 4);
  EXPECT_DOUBLE_EQ(h.range(), 1.0);
  const std::vector<float> b = {3.5f, -0.05f, NAN};
  h.Add(b.data(), 3);
  EXPECT_DOUBLE_EQ(h.range(), 4.0);  // doubled twice
  EXPECT_EQ(h.count(), 6);
  EXPECT_EQ(h.nonfinite(), 1);
  double total = 0;
  for (double c : h.counts()) total += c;
  EXPECT_DOUBLE_EQ(total, 6.0);
  EXPECT_FLOAT_EQ(h.min(), -0.2f);
  EXPECT_FLOAT_EQ(h.max(), 3.5f);
  // 3.5 is in the last quarter; 0.05, 0.1, 0.2 in the first bin of width 0.25.
  EXPECT_EQ(h.counts()[0], 3.0);
  EXPECT_EQ(h.counts()[14], 1.0);
}

TEST(Calibrators, UniformAllKeepTheRange) {
  const Histogram h = Fill(Uniform(200000, -2.f, 2.f, 1));
  EXPECT_NEAR(MinMaxAmax(h), 2.f, 1e-3);
  EXPECT_NEAR(PercentileAmax(h, 99.99), 2.f * 0.9999f, 5e-3);
  EXPECT_NEAR(PercentileAmax(h, 90), 1.8f, 1e-2);
  // Uniform data: clipping only loses, the entropy threshold stays near the top.
  EXPECT_GT(EntropyAmax(h), 1.8f);
  EXPECT_LE(EntropyAmax(h), 2.f + 1e-3f);
}

TEST(Calibrators, EntropyClipsOutliersMinMaxDoesNot) {
  const Histogram h = Fill(GaussianWithOutliers(400000, 8, 2));
  EXPECT_NEAR(MinMaxAmax(h), 50.f, 1e-4);
  const float e = EntropyAmax(h);
  EXPECT_LT(e, 12.f) << "entropy must clip the +-50 outliers";
  EXPECT_GT(e, 2.5f) << "entropy must keep the bulk of the gaussian";
  // |x| of N(0,1): P(|x| > 3.89) = 1e-4, the 8 outliers add 2e-5.
  const float p = PercentileAmax(h, 99.99);
  EXPECT_GT(p, 3.6f);
  EXPECT_LT(p, 4.3f);
  EXPECT_NEAR(PercentileAmax(h, 95.0), 1.96f, 0.1f);
  EXPECT_EQ(CalibratedAmax(h, CalibrationMethod::kMinMax), MinMaxAmax(h));
}

TEST(Calibrators, MethodNames) {
  EXPECT_EQ(*ParseCalibrationMethod("Entropy"), CalibrationMethod::kEntropy);
  EXPECT_EQ(*ParseCalibrationMethod("minmax"), CalibrationMethod::kMinMax);
  EXPECT_EQ(*ParseCalibrationMethod("PERCENTILE"), CalibrationMethod::kPercentile);
  auto bad = ParseCalibrationMethod("kl");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'kl'"), std::string::npos);
}

TEST(Calibrators, PerChannelWeights) {
  const std::vector<float> w = {0.5f, -2.f, 1.f, 0.25f, -0.125f, 0.f};
  const auto a = PerChannelAmax(w.data(), 2, 3);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], 2.f);
  EXPECT_EQ(a[1], 0.25f);
}

TEST(CalibrationTable, RoundTripAndAtomicWrite) {
  CalibrationTable t;
  t.calibrator = "entropy";
  t.ranges["conv1 input"] = {1.2345678f, -0.5f, 1.5f};
  t.ranges["x:0"] = {3e-5f, 0.f, 3e-5f};
  const std::string dir = ::testing::TempDir() + "/kiln_calib_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/table.txt";
  ASSERT_TRUE(t.WriteFile(path).ok());
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1) << "no temporary file left behind";
  auto back = CalibrationTable::ReadFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->calibrator, "entropy");
  EXPECT_EQ(back->kiln_version, KILN_VERSION);
  ASSERT_EQ(back->ranges.size(), 2u);
  EXPECT_EQ(back->ranges.at("conv1 input").amax, 1.2345678f);  // bit exact
  EXPECT_EQ(back->ranges.at("x:0").amax, 3e-5f);
  EXPECT_EQ(back->ToText(), t.ToText());
  std::filesystem::remove_all(dir);
}

TEST(CalibrationTable, MismatchNamesTheTensors) {
  CalibrationTable t;
  t.calibrator = "minmax";
  t.ranges["a"] = {1, -1, 1};
  t.ranges["stale"] = {1, -1, 1};
  Status s = t.CheckMatches({"a", "b"}, "cache.txt");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cache.txt"), std::string::npos);
  EXPECT_NE(s.message().find("no range for 'b'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'stale'"), std::string::npos) << s.message();
  EXPECT_TRUE(t.CheckMatches({"a", "stale"}, "x").ok());
  // Optional ranges (residual branches, Int8ResidualTensorsOf) may be there or not.
  const std::set<std::string> optional = {"stale", "c"};
  EXPECT_TRUE(t.CheckMatches({"a"}, "x", &optional).ok());
  EXPECT_FALSE(t.CheckMatches({"a", "b"}, "x", &optional).ok());
  const std::set<std::string> other = {"c"};
  EXPECT_FALSE(t.CheckMatches({"a"}, "x", &other).ok());
}

// The residual branches calibration also measures: conv outputs feeding a two-input Add that no
// INT8 layer reads as its input (a conv reading one is already in Int8TensorsOf).
TEST(CalibrationTable, ResidualTensors) {
  testing_cpu::SegmentBuilder b;
  b.In("x", {1, 4, 6, 6})
      .Init("w0", testing_cpu::Random({4, 4, 1, 1}, 1))
      .Init("w1", testing_cpu::Random({4, 4, 1, 1}, 2))
      .Init("w2", testing_cpu::Random({4, 4, 1, 1}, 3))
      .Op("Conv", {"x", "w0"}, {"c0"})
      .Op("Relu", {"c0"}, {"r0"})
      .Op("Conv", {"r0", "w1"}, {"c1"})
      .Op("Conv", {"x", "w2"}, {"d"})
      .Op("Add", {"c1", "d"}, {"s"})
      .Op("Add", {"s", "r0"}, {"y"})
      .Out("y");
  EXPECT_EQ(Int8TensorsOf(b.graph()), (std::set<std::string>{"x", "r0"}));
  EXPECT_EQ(Int8ResidualTensorsOf(b.graph()), (std::set<std::string>{"c1", "d"}));
}

TEST(CalibrationTable, BadFilesAreErrors) {
  for (const std::string& text :
       {std::string(""), std::string("hello\n"),
        std::string("kiln-calibration-table 1\ncalibrator entropy\nrange 1 2\n"),
        std::string("kiln-calibration-table 1\ncalibrator entropy\nrange x 0 1 t\n"),
        std::string("kiln-calibration-table 1\ncalibrator entropy\nrange -1 0 1 t\n"),
        std::string("kiln-calibration-table 1\ncalibrator entropy\nrange nan 0 1 t\n"),
        std::string("kiln-calibration-table 1\ncalibrator kl\n"),
        std::string("kiln-calibration-table 1\nrange 1 0 1 t\n"),
        std::string("kiln-calibration-table 1\ncalibrator minmax\nrange 1 0 1 t\nrange 1 0 1 t\n"),
        std::string("kiln-calibration-table 1\ncalibrator minmax\nbogus 1\n")}) {
    auto r = CalibrationTable::Parse(text, "t.txt");
    EXPECT_FALSE(r.ok()) << text;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("t.txt"), std::string::npos);
    }
  }
  EXPECT_FALSE(CalibrationTable::ReadFile("/nonexistent/dir/t.txt").ok());
}

TEST(CalibrationCollector, TableFromBatches) {
  auto c = GetCalibrationCollector("test-collector");
  ResetCalibrationCollector("test-collector");
  c = GetCalibrationCollector("test-collector");
  auto t1 = Tensor::Create(DataType::kFloat32, {1000});
  ASSERT_TRUE(t1.ok());
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.f, 4.f);
  for (int64_t i = 0; i < 1000; ++i) t1->mutable_data<float>()[i] = u(rng);
  c->Add("relu_out", *t1);
  c->NoteBatch();
  EXPECT_EQ(c->batches(), 1);
  CalibrationTable t = c->Table(CalibrationMethod::kMinMax, 99.99);
  ASSERT_EQ(t.ranges.count("relu_out"), 1u);
  EXPECT_GE(t.ranges["relu_out"].min, 0.f);
  EXPECT_NEAR(t.ranges["relu_out"].amax, 4.f, 0.05f);
  EXPECT_EQ(FindCalibrationCollector("test-collector"), c);
  ResetCalibrationCollector("test-collector");
  EXPECT_EQ(FindCalibrationCollector("test-collector"), nullptr);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// The INT8 ranges are part of an engine's build fingerprint (plans and caches never mix them).
TEST(CalibrationTable, RangesChangeTheBuildFingerprint) {
  BuildConfig a;
  a.precision = Precision::kINT8;
  BuildConfig b = a;
  EXPECT_EQ(a.Fingerprint(), b.Fingerprint());
  b.int8_ranges["x"] = {1.f, -1.f, 1.f};
  EXPECT_NE(a.Fingerprint(), b.Fingerprint());
  BuildConfig c = b;
  EXPECT_EQ(b.Fingerprint(), c.Fingerprint());
  c.int8_ranges["x"].amax = 1.0000001f;
  EXPECT_NE(b.Fingerprint(), c.Fingerprint());
}

}  // namespace
}  // namespace kiln
