#include "io/npy/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "."
#endif

namespace kiln {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string DataPath(const std::string& name) {
  return std::string(KILN_SOURCE_DIR) + "/tests/data/npy/" + name;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_npy_test.XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Path(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
    return names;
  }

 private:
  std::string path_;
};

// Builds a .npy file from a header dict string (padded like numpy) and raw data.
std::string MakeNpy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  uint32_t len = static_cast<uint32_t>(header.size());
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  if (major != 1) {
    out.push_back(static_cast<char>((len >> 16) & 0xff));
    out.push_back(static_cast<char>((len >> 24) & 0xff));
  }
  return out + header + data;
}

// A tensor of the given dtype whose bytes follow a pattern (bools 0/1).
Tensor Patterned(DataType dtype, std::vector<int64_t> dims, uint8_t seed = 1) {
  Tensor t = Tensor::Empty(dtype, std::move(dims));
  auto* b = static_cast<uint8_t*>(t.raw_mutable_data());
  for (size_t i = 0; i < t.nbytes(); ++i) {
    b[i] = dtype == DataType::kBool ? (i * 7 + seed) % 3 == 0
                                    : static_cast<uint8_t>(i * 37 + seed * 11 + 5);
  }
  return t;
}

const DataType kAllNpyTypes[] = {
    DataType::kFloat16, DataType::kFloat32, DataType::kFloat64, DataType::kInt8,
    DataType::kInt16,   DataType::kInt32,   DataType::kInt64,   DataType::kUInt8,
    DataType::kUInt16,  DataType::kUInt32,  DataType::kUInt64,  DataType::kBool,
};

// ----------------------------------------------------------------------------- round trips

TEST(NpyTest, RoundTripEveryDtype) {
  TempDir dir;
  for (DataType dt : kAllNpyTypes) {
    SCOPED_TRACE(DataTypeName(dt));
    Tensor t = Patterned(dt, {2, 3, 5});
    auto bytes = SerializeNpy(t);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto back = ParseNpy(*bytes, "mem");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->BitwiseEqual(t));

    std::string path = dir.Path(std::string(DataTypeName(dt)) + ".npy");
    ASSERT_TRUE(WriteNpyFile(path, t).ok());
    auto file = ReadNpyFile(path);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_TRUE(file->BitwiseEqual(t));
    EXPECT_EQ(ReadBytes(path), *bytes);
  }
}

TEST(NpyTest, HeaderIsVersion1AlignedAndNumpyStyle) {
  auto bytes = SerializeNpy(Tensor::FromVector<float>({1, 2, 3}));
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  size_t header_len = static_cast<uint8_t>((*bytes)[8]) | (static_cast<uint8_t>((*bytes)[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ((*bytes)[10 + header_len - 1], '\n');
  EXPECT_THAT(*bytes, HasSubstr("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"));
  EXPECT_EQ(bytes->size(), 10 + header_len + 12);

  auto scalar = SerializeNpy(Tensor::Scalar<int64_t>(5));
  ASSERT_TRUE(scalar.ok());
  EXPECT_THAT(*scalar, HasSubstr("'descr': '<i8'"));
  EXPECT_THAT(*scalar, HasSubstr("'shape': ()"));
  auto b = SerializeNpy(Tensor::FromVector<bool>({true}, {1, 1}, true));
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(*b, HasSubstr("'descr': '|b1'"));
  EXPECT_THAT(*b, HasSubstr("'shape': (1, 1)"));
}

TEST(NpyTest, Float16Values) {
  std::vector<Float16> v = {Float16(1.5f), Float16(-2.0f), Float16(65504.0f)};
  Tensor t = Tensor::FromVector(v);
  auto bytes = SerializeNpy(t);
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(*bytes, HasSubstr("'<f2'"));
  auto back = ParseNpy(*bytes, "mem");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->dtype(), DataType::kFloat16);
  EXPECT_EQ(back->GetAsDouble(0), 1.5);
  EXPECT_EQ(back->GetAsDouble(1), -2.0);
  EXPECT_EQ(back->GetAsDouble(2), 65504.0);
}

TEST(NpyTest, Scalar) {
  Tensor t = Tensor::Scalar<double>(3.25);
  auto bytes = SerializeNpy(t);
  ASSERT_TRUE(bytes.ok());
  auto back = ParseNpy(*bytes, "mem");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rank(), 0);
  EXPECT_EQ(back->num_elements(), 1);
  EXPECT_EQ(*back->data<double>(), 3.25);
}

TEST(NpyTest, EmptyArray) {
  Tensor t = Tensor::Empty(DataType::kFloat32, {0, 3});
  auto bytes = SerializeNpy(t);
  ASSERT_TRUE(bytes.ok());
  EXPECT_THAT(*bytes, HasSubstr("'shape': (0, 3)"));
  auto back = ParseNpy(*bytes, "mem");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->dims(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(back->num_elements(), 0);
}

TEST(NpyTest, BigEndianInput) {
  // >i4 [1, -2] and >f8 [1.0]
  std::string i4("\x00\x00\x00\x01\xff\xff\xff\xfe", 8);
  auto t = ParseNpy(MakeNpy("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", i4), "be");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->dtype(), DataType::kInt32);
  EXPECT_EQ(t->data<int32_t>()[0], 1);
  EXPECT_EQ(t->data<int32_t>()[1], -2);

  std::string f8("\x3f\xf0\x00\x00\x00\x00\x00\x00", 8);
  auto d = ParseNpy(MakeNpy("{'descr': '>f8', 'fortran_order': False, 'shape': (), }", f8), "be");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d->data<double>(), 1.0);

  std::string f2("\x3e\x00", 2);  // 1.5 as big-endian half
  auto h = ParseNpy(MakeNpy("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }", f2), "be");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->GetAsDouble(0), 1.5);
}

TEST(NpyTest, Version2And3Headers) {
  std::string data("\x01\x00\x02\x00", 4);
  for (int major : {2, 3}) {
    auto t = ParseNpy(
        MakeNpy("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", data, major), "v");
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->data<uint16_t>()[1], 2);
  }
  auto v4 = ParseNpy(MakeNpy("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", data, 4),
                     "v4.npy");
  EXPECT_EQ(v4.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(v4.status().message(), HasSubstr("v4.npy"));
}

TEST(NpyTest, LargeHeaderReadFromFile) {
  // A version 2.0 header longer than the reader's first chunk.
  std::string dict =
      "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }" + std::string(9000, ' ');
  std::string bytes = MakeNpy(dict, std::string("\x07\x00\x00\x00", 4), 2);
  TempDir dir;
  WriteBytes(dir.Path("big.npy"), bytes);
  auto t = ReadNpyFile(dir.Path("big.npy"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->data<int32_t>()[0], 7);
}

TEST(NpyTest, BoolNormalized) {
  std::string data("\x00\x01\x02\xff", 4);
  auto t =
      ParseNpy(MakeNpy("{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", data), "b");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->dtype(), DataType::kBool);
  const auto* raw = static_cast<const uint8_t*>(t->raw_data());
  EXPECT_EQ(raw[0], 0);
  EXPECT_EQ(raw[1], 1);
  EXPECT_EQ(raw[2], 1);
  EXPECT_EQ(raw[3], 1);
}

TEST(NpyTest, HeaderDictVariants) {
  std::string data("\x01\x02\x03\x04\x05\x06", 6);
  const char* dicts[] = {
      "{'shape': (2, 3), 'fortran_order': False, 'descr': '|u1'}",
      "{\"descr\":\"|u1\",\"fortran_order\":False,\"shape\":(2,3)}",
      "{ 'descr' : 'u1' ,  'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }",
      "{'descr': '<u1', 'fortran_order': False, 'shape': (2L, 3L), }",
      "{'fortran_order': False,\n 'shape': (2, 3),\n 'descr': '>u1'}",
  };
  for (const char* d : dicts) {
    SCOPED_TRACE(d);
    auto t = ParseNpy(MakeNpy(d, data), "v");
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->dtype(), DataType::kUInt8);
    EXPECT_EQ(t->dims(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t->data<uint8_t>()[5], 6);
  }
  auto one =
      ParseNpy(MakeNpy("{'descr': '|i1', 'fortran_order': False, 'shape': (6,)}", data), "v");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->dims(), (std::vector<int64_t>{6}));
}

TEST(NpyTest, FortranOrderTransposed) {
  // 2x3 f4 in column-major order: [[0,1,2],[3,4,5]] is stored 0,3,1,4,2,5.
  std::vector<float> col = {0, 3, 1, 4, 2, 5};
  std::string data(reinterpret_cast<const char*>(col.data()), col.size() * 4);
  auto t =
      ParseNpy(MakeNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data), "f");
  ASSERT_TRUE(t.ok()) << t.status();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t->data<float>()[i], i);
}

TEST(NpyTest, WriteRejectsUnsupportedTensors) {
  EXPECT_FALSE(SerializeNpy(Tensor()).ok());
  auto bf = SerializeNpy(Tensor::FromVector<BFloat16>({BFloat16(1.0f)}));
  EXPECT_FALSE(bf.ok());
  EXPECT_THAT(bf.status().message(), HasSubstr("bfloat16"));
  EXPECT_FALSE(SerializeNpy(Tensor::FromVector<std::string>({"a"})).ok());
  TempDir dir;
  EXPECT_FALSE(WriteNpyFile(dir.Path("x.npy"), Tensor::FromVector<BFloat16>({})).ok());
  EXPECT_TRUE(dir.Files().empty());
}

TEST(NpyTest, RejectsUnsupportedDtypes) {
  std::string data(8, '\0');
  struct Case {
    const char* descr;
    StatusCode code;
  } cases[] = {
      {"<V2", StatusCode::kUnimplemented},   {"<c8", StatusCode::kUnimplemented},
      {"<U2", StatusCode::kUnimplemented},   {"|O", StatusCode::kUnimplemented},
      {"<f16", StatusCode::kUnimplemented},  {"<i3", StatusCode::kInvalidArgument},
      {"<x4", StatusCode::kInvalidArgument}, {"", StatusCode::kInvalidArgument},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.descr);
    auto t = ParseNpy(MakeNpy(std::string("{'descr': '") + c.descr +
                                  "', 'fortran_order': False, 'shape': (1,), }",
                              data),
                      "dt.npy");
    EXPECT_EQ(t.status().code(), c.code) << t.status();
    EXPECT_THAT(t.status().message(), HasSubstr("dt.npy"));
  }
  auto rec = ParseNpy(
      MakeNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", data), "r");
  EXPECT_EQ(rec.status().code(), StatusCode::kUnimplemented);
}

// ----------------------------------------------------------------------------- numpy files

TEST(NpyTest, ReadsNumpyBigEndianFile) {
  auto t = ReadNpyFile(DataPath("be_f4.npy"));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->dtype(), DataType::kFloat32);
  EXPECT_EQ(t->dims(), (std::vector<int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t->data<float>()[i], 0.5f * i);
}

TEST(NpyTest, ReadsNumpyFortranFile) {
  auto t = ReadNpyFile(DataPath("fortran_f8.npy"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->dims(), (std::vector<int64_t>{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t->data<double>()[i], i);
}

TEST(NpyTest, ReadsNumpyVersion2And3Files) {
  auto v2 = ReadNpyFile(DataPath("v2_i2.npy"));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->dtype(), DataType::kInt16);
  EXPECT_EQ(v2->data<int16_t>()[0], -3);
  EXPECT_EQ(v2->data<int16_t>()[2], 1000);
  auto v3 = ReadNpyFile(DataPath("v3_u2.npy"));
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(v3->data<uint16_t>()[2], 65535);
}

TEST(NpyTest, ReadsNumpySavez) {
  auto z = ReadNpzFile(DataPath("savez.npz"));
  ASSERT_TRUE(z.ok()) << z.status();
  ASSERT_EQ(z->size(), 4u);
  EXPECT_EQ((*z)[0].first, "weights");
  EXPECT_EQ((*z)[1].first, "step");
  EXPECT_EQ((*z)[2].first, "mask");
  EXPECT_EQ((*z)[3].first, "empty");
  const Tensor& w = (*z)[0].second;
  EXPECT_EQ(w.TypeString(), "float32[2,3]");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w.data<float>()[i], i);
  EXPECT_EQ((*z)[1].second.TypeString(), "int64[]");
  EXPECT_EQ(*(*z)[1].second.data<int64_t>(), 42);
  EXPECT_EQ((*z)[2].second.TypeString(), "bool[3]");
  EXPECT_TRUE((*z)[2].second.data<bool>()[0]);
  EXPECT_FALSE((*z)[2].second.data<bool>()[1]);
  EXPECT_EQ((*z)[3].second.TypeString(), "uint8[0,3]");
}

TEST(NpyTest, ReadsNumpySavezCompressed) {
  auto z = ReadNpzFile(DataPath("savez_compressed.npz"));
  ASSERT_TRUE(z.ok()) << z.status();
  ASSERT_EQ(z->size(), 2u);
  EXPECT_EQ((*z)[0].first, "half");
  EXPECT_EQ((*z)[0].second.TypeString(), "float16[3]");
  EXPECT_EQ((*z)[0].second.GetAsDouble(2), 65504.0);
  EXPECT_EQ((*z)[1].first, "ids");
  EXPECT_EQ((*z)[1].second.TypeString(), "int32[10,10]");
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*z)[1].second.data<int32_t>()[i], i);
}

TEST(NpyTest, ReadsSharedFixtureIfPresent) {
  const std::string path = "/work/shared/fixtures/graphdef/fc-layers/input_0.npy";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present";
  auto t = ReadNpyFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->TypeString(), "float32[1,784]");
}

// ----------------------------------------------------------------------------- npz

NamedTensors SampleTensors() {
  NamedTensors ts;
  int seed = 1;
  for (DataType dt : kAllNpyTypes) {
    ts.emplace_back(std::string("t_") + DataTypeName(dt), Patterned(dt, {3, 4}, seed++));
  }
  ts.emplace_back("scalar", Tensor::Scalar<float>(2.5f));
  ts.emplace_back("empty", Tensor::Empty(DataType::kInt32, {0, 3}));
  ts.emplace_back("zeros", Tensor::Empty(DataType::kFloat32, {64, 64}));  // compressible
  return ts;
}

void ExpectSame(const NamedTensors& a, const NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(a[i].second.BitwiseEqual(b[i].second)) << a[i].first;
  }
}

TEST(NpzTest, RoundTripStoredAndCompressed) {
  TempDir dir;
  NamedTensors ts = SampleTensors();
  for (bool compress : {false, true}) {
    SCOPED_TRACE(compress);
    std::string path = dir.Path(compress ? "c.npz" : "s.npz");
    ASSERT_TRUE(WriteNpzFile(path, ts, compress).ok());
    auto back = ReadNpzFile(path);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSame(ts, *back);
    auto parsed = ParseNpz(ReadBytes(path), path);
    ASSERT_TRUE(parsed.ok());
    ExpectSame(ts, *parsed);
  }
  EXPECT_LT(fs::file_size(dir.Path("c.npz")), fs::file_size(dir.Path("s.npz")));
  // Only the two archives: no temporary files left behind.
  EXPECT_EQ(dir.Files().size(), 2u);
}

TEST(NpzTest, EmptyArchive) {
  TempDir dir;
  ASSERT_TRUE(WriteNpzFile(dir.Path("e.npz"), {}).ok());
  auto back = ReadNpzFile(dir.Path("e.npz"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->empty());
}

TEST(NpzTest, Zip64EndRecordForManyMembers) {
  // 70000 members exceed the 16-bit entry count of a classic zip end record.
  NamedTensors ts;
  for (int i = 0; i < 70000; ++i)
    ts.emplace_back("m" + std::to_string(i), Tensor::Scalar<int16_t>(static_cast<int16_t>(i)));
  TempDir dir;
  ASSERT_TRUE(WriteNpzFile(dir.Path("many.npz"), ts).ok());
  auto back = ReadNpzFile(dir.Path("many.npz"));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), ts.size());
  EXPECT_EQ((*back)[69999].first, "m69999");
  EXPECT_EQ(*(*back)[69999].second.data<int16_t>(), static_cast<int16_t>(69999));
}

TEST(NpzTest, WriterRejectsBadNames) {
  TempDir dir;
  Tensor t = Tensor::Scalar<int32_t>(1);
  EXPECT_FALSE(WriteNpzFile(dir.Path("a.npz"), {{"../evil", t}}).ok());
  EXPECT_FALSE(WriteNpzFile(dir.Path("a.npz"), {{"/abs", t}}).ok());
  EXPECT_FALSE(WriteNpzFile(dir.Path("a.npz"), {{"", t}}).ok());
  EXPECT_FALSE(WriteNpzFile(dir.Path("a.npz"), {{"x", t}, {"x", t}}).ok());
  EXPECT_FALSE(WriteNpzFile(dir.Path("a.npz"), {{"x", Tensor::FromVector<BFloat16>({})}}).ok());
  EXPECT_TRUE(dir.Files().empty());
  // Slashes inside a name are fine (numpy allows them too).
  ASSERT_TRUE(WriteNpzFile(dir.Path("a.npz"), {{"layer1/w", t}}).ok());
  auto back = ReadNpzFile(dir.Path("a.npz"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)[0].first, "layer1/w");
}

TEST(NpyTest, AtomicWriteReplacesAndFailsCleanly) {
  TempDir dir;
  std::string path = dir.Path("x.npy");
  ASSERT_TRUE(WriteNpyFile(path, Tensor::FromVector<int32_t>({1, 2})).ok());
  ASSERT_TRUE(WriteNpyFile(path, Tensor::FromVector<int32_t>({3})).ok());
  auto t = ReadNpyFile(path);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->num_elements(), 1);
  EXPECT_EQ(dir.Files(), std::vector<std::string>{"x.npy"});
  EXPECT_FALSE(WriteNpyFile(dir.Path("no/such/dir.npy"), Tensor::Scalar<int32_t>(1)).ok());
  EXPECT_FALSE(WriteNpzFile(dir.Path("no/such/dir.npz"), {}).ok());
}

TEST(NpyTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadNpyFile("/nonexistent/x.npy").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadNpzFile("/nonexistent/x.npz").status().code(), StatusCode::kNotFound);
}

// ----------------------------------------------------------------------------- bad input

std::string ValidNpy() {
  return MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                 std::string(24, '\x01'));
}

TEST(NpyBadInputTest, TruncatedAndGarbage) {
  std::string good = ValidNpy();
  for (size_t len :
       {size_t{0}, size_t{3}, size_t{6}, size_t{9}, size_t{20}, size_t{63}, good.size() - 1}) {
    SCOPED_TRACE(len);
    auto t = ParseNpy(good.substr(0, len), "trunc.npy");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kDataLoss) << t.status();
    EXPECT_THAT(t.status().message(), HasSubstr("trunc.npy"));
  }
  std::string bad = good;
  bad[1] = 'X';
  auto t = ParseNpy(bad, "magic.npy");
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("magic"));
  EXPECT_EQ(ParseNpy("PK\x03\x04 this is a zip", "z").status().code(),
            StatusCode::kInvalidArgument);
  // Extra bytes after the data.
  EXPECT_EQ(ParseNpy(good + "xx", "extra").status().code(), StatusCode::kInvalidArgument);
  // Header length pointing past the end.
  std::string len_bad = good;
  len_bad[8] = '\xff';
  len_bad[9] = '\x7f';
  EXPECT_EQ(ParseNpy(len_bad, "len").status().code(), StatusCode::kDataLoss);
}

TEST(NpyBadInputTest, BadShapes) {
  std::string data(24, '\0');
  struct Case {
    const char* shape;
    StatusCode code;
  } cases[] = {
      {"(2, 4)", StatusCode::kDataLoss},                           // larger than the data
      {"(100000000000,)", StatusCode::kDataLoss},                  // far larger than the data
      {"(-1, 6)", StatusCode::kInvalidArgument},                   // negative
      {"(9223372036854775807, 2)", StatusCode::kInvalidArgument},  // element count overflow
      {"(4611686018427387904,)", StatusCode::kInvalidArgument},    // byte count overflow
      {"(99999999999999999999,)", StatusCode::kInvalidArgument},   // beyond int64
      {"(6)", StatusCode::kInvalidArgument},                       // not a tuple
      {"[6]", StatusCode::kInvalidArgument},
      {"(6,,)", StatusCode::kInvalidArgument},
      {"(1.5,)", StatusCode::kInvalidArgument},
      {"(2, 3", StatusCode::kInvalidArgument},
      {"(1,)", StatusCode::kInvalidArgument},  // smaller than the data
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.shape);
    auto t = ParseNpy(
        MakeNpy(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + c.shape + ", }",
                data),
        "shape.npy");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), c.code) << t.status();
    EXPECT_THAT(t.status().message(), HasSubstr("shape.npy"));
  }
  // More dimensions than numpy can make.
  std::string many = "(";
  for (int i = 0; i < 100; ++i) many += "1, ";
  many += ")";
  EXPECT_FALSE(ParseNpy(MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': " + many + ", }",
                                std::string(4, '\0')),
                        "many")
                   .ok());
}

TEST(NpyBadInputTest, BadDicts) {
  std::string data(4, '\0');
  const char* dicts[] = {
      "",
      "{",
      "}",
      "descr: '<f4'",
      "{'descr': '<f4', 'fortran_order': False}",  // no shape
      "{'descr': '<f4', 'shape': (1,)}",           // no fortran_order
      "{'fortran_order': False, 'shape': (1,)}",   // no descr
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
      "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
      "{'descr': <f4, 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': False 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,),,}",
      "{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (1,)}",
      "{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}",
  };
  for (const char* d : dicts) {
    SCOPED_TRACE(d);
    auto t = ParseNpy(MakeNpy(d, data), "dict.npy");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << t.status();
    EXPECT_THAT(t.status().message(), HasSubstr("dict.npy"));
  }
}

// Little helpers to patch zip archives.
uint32_t Get32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}
void Set16(std::string* s, size_t at, uint16_t v) {
  (*s)[at] = static_cast<char>(v & 0xff);
  (*s)[at + 1] = static_cast<char>(v >> 8);
}
size_t CentralDirOffset(const std::string& zip) { return Get32(zip, zip.size() - 22 + 16); }

std::string WrittenNpz(const NamedTensors& ts, bool compress) {
  TempDir dir;
  EXPECT_TRUE(WriteNpzFile(dir.Path("z.npz"), ts, compress).ok());
  return ReadBytes(dir.Path("z.npz"));
}

TEST(NpzBadInputTest, WrongCrc) {
  for (bool compress : {false, true}) {
    SCOPED_TRACE(compress);
    std::string z = WrittenNpz({{"a", Patterned(DataType::kFloat32, {8})}}, compress);
    size_t crc_at = CentralDirOffset(z) + 16;
    z[crc_at] ^= 0x5a;
    auto r = ParseNpz(z, "crc.npz");
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("crc.npz"));
    EXPECT_THAT(r.status().message(), HasSubstr("CRC"));
  }
  // Corrupt member data instead of the recorded CRC (stored: last data byte).
  std::string z = WrittenNpz({{"a", Patterned(DataType::kFloat32, {8})}}, false);
  z[CentralDirOffset(z) - 1] ^= 1;
  EXPECT_EQ(ParseNpz(z, "d").status().code(), StatusCode::kDataLoss);
}

TEST(NpzBadInputTest, Truncated) {
  for (bool compress : {false, true}) {
    std::string z = WrittenNpz({{"a", Patterned(DataType::kInt64, {20})}}, compress);
    for (size_t len = 0; len < z.size(); ++len) {
      auto r = ParseNpz(z.substr(0, len), "trunc.npz");
      ASSERT_FALSE(r.ok()) << len;
      EXPECT_TRUE(r.status().code() == StatusCode::kDataLoss ||
                  r.status().code() == StatusCode::kInvalidArgument)
          << r.status();
      EXPECT_THAT(r.status().message(), HasSubstr("trunc.npz"));
    }
  }
  EXPECT_EQ(ParseNpz("not a zip at all, just some text here", "g").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(NpzBadInputTest, UnsafeMemberName) {
  // Write "xxxx.npy", then rename it in both headers to "../x.npy" (same length).
  std::string z = WrittenNpz({{"xxxx", Tensor::Scalar<int32_t>(1)}}, false);
  size_t pos = 0;
  int replaced = 0;
  while ((pos = z.find("xxxx.npy", pos)) != std::string::npos) {
    z.replace(pos, 8, "../x.npy");
    ++replaced;
  }
  ASSERT_EQ(replaced, 2);
  auto r = ParseNpz(z, "evil.npz");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("../x.npy"));

  std::string abs = WrittenNpz({{"xxxx", Tensor::Scalar<int32_t>(1)}}, false);
  for (size_t p = 0; (p = abs.find("xxxx.npy", p)) != std::string::npos;)
    abs.replace(p, 8, "/tmp.npy");
  EXPECT_EQ(ParseNpz(abs, "abs.npz").status().code(), StatusCode::kInvalidArgument);

  std::string txt = WrittenNpz({{"xxxx", Tensor::Scalar<int32_t>(1)}}, false);
  for (size_t p = 0; (p = txt.find("xxxx.npy", p)) != std::string::npos;)
    txt.replace(p, 8, "xxxx.txt");
  EXPECT_EQ(ParseNpz(txt, "txt.npz").status().code(), StatusCode::kInvalidArgument);
}

TEST(NpzBadInputTest, EncryptedAndUnsupportedMethod) {
  std::string z = WrittenNpz({{"a", Tensor::Scalar<int32_t>(1)}}, false);
  size_t cd = CentralDirOffset(z);
  std::string enc = z;
  Set16(&enc, cd + 8, 1);  // flags: encrypted
  auto r = ParseNpz(enc, "enc.npz");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(r.status().message(), HasSubstr("encrypted"));

  std::string bz = z;
  Set16(&bz, cd + 10, 12);  // method: bzip2
  r = ParseNpz(bz, "bz.npz");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(r.status().message(), HasSubstr("method 12"));

  // A data-descriptor flag is harmless: sizes come from the central directory.
  std::string dd = z;
  Set16(&dd, cd + 8, 1 << 3);
  Set16(&dd, 6, 1 << 3);
  EXPECT_TRUE(ParseNpz(dd, "dd.npz").ok());
}

TEST(NpzBadInputTest, LiesAboutSizes) {
  std::string z = WrittenNpz({{"a", Patterned(DataType::kInt32, {16})}}, true);
  size_t cd = CentralDirOffset(z);
  // Uncompressed size larger / smaller than what inflates.
  for (uint32_t delta : {1u, 0xffffffffu /* -1 */, 1000000u}) {
    std::string bad = z;
    uint32_t usize = Get32(z, cd + 24) + delta;
    for (int i = 0; i < 4; ++i) bad[cd + 24 + i] = static_cast<char>((usize >> (8 * i)) & 0xff);
    auto r = ParseNpz(bad, "size.npz");
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
  }
  // Compressed size beyond the data area.
  std::string bad = z;
  uint32_t csize = Get32(z, cd + 20) + 100;
  for (int i = 0; i < 4; ++i) bad[cd + 20 + i] = static_cast<char>((csize >> (8 * i)) & 0xff);
  EXPECT_EQ(ParseNpz(bad, "c").status().code(), StatusCode::kDataLoss);
}

// A minimal zip builder (stored members) for layouts our writer does not produce: zip64
// central directory records and data descriptors.
void Put(std::string* s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string BuildZip(const std::vector<std::pair<std::string, std::string>>& members, bool zip64,
                     bool data_descriptor) {
  std::string out, cd;
  for (const auto& [name, data] : members) {
    uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    uint64_t offset = out.size();
    uint16_t flags = data_descriptor ? 8 : 0;
    Put(&out, 0x04034b50, 4);
    Put(&out, 45, 2);
    Put(&out, flags, 2);
    Put(&out, 0, 2);  // stored
    Put(&out, 0, 4);  // time, date
    Put(&out, data_descriptor ? 0 : crc, 4);
    Put(&out, data_descriptor ? 0 : data.size(), 4);
    Put(&out, data_descriptor ? 0 : data.size(), 4);
    Put(&out, name.size(), 2);
    Put(&out, 0, 2);
    out += name + data;
    if (data_descriptor) {
      Put(&out, 0x08074b50, 4);
      Put(&out, crc, 4);
      Put(&out, data.size(), 4);
      Put(&out, data.size(), 4);
    }
    Put(&cd, 0x02014b50, 4);
    Put(&cd, 45, 2);
    Put(&cd, 45, 2);
    Put(&cd, flags, 2);
    Put(&cd, 0, 2);
    Put(&cd, 0, 4);
    Put(&cd, crc, 4);
    Put(&cd, zip64 ? 0xffffffffu : data.size(), 4);
    Put(&cd, zip64 ? 0xffffffffu : data.size(), 4);
    Put(&cd, name.size(), 2);
    Put(&cd, zip64 ? 4 + 24 + 4 : 0, 2);  // a zip64 field plus an unknown empty field
    Put(&cd, 0, 2);
    Put(&cd, 0, 2);
    Put(&cd, 0, 2);
    Put(&cd, 0, 4);
    Put(&cd, zip64 ? 0xffffffffu : offset, 4);
    cd += name;
    if (zip64) {
      Put(&cd, 0x0001, 2);
      Put(&cd, 24, 2);
      Put(&cd, data.size(), 8);
      Put(&cd, data.size(), 8);
      Put(&cd, offset, 8);
      Put(&cd, 0xcafe, 2);
      Put(&cd, 0, 2);
    }
  }
  uint64_t cd_offset = out.size();
  out += cd;
  if (zip64) {
    uint64_t z64 = out.size();
    Put(&out, 0x06064b50, 4);
    Put(&out, 44, 8);
    Put(&out, 45, 2);
    Put(&out, 45, 2);
    Put(&out, 0, 4);
    Put(&out, 0, 4);
    Put(&out, members.size(), 8);
    Put(&out, members.size(), 8);
    Put(&out, cd.size(), 8);
    Put(&out, cd_offset, 8);
    Put(&out, 0x07064b50, 4);
    Put(&out, 0, 4);
    Put(&out, z64, 8);
    Put(&out, 1, 4);
  }
  Put(&out, 0x06054b50, 4);
  Put(&out, 0, 4);
  Put(&out, zip64 ? 0xffff : members.size(), 2);
  Put(&out, zip64 ? 0xffff : members.size(), 2);
  Put(&out, zip64 ? 0xffffffffu : cd.size(), 4);
  Put(&out, zip64 ? 0xffffffffu : cd_offset, 4);
  Put(&out, 7, 2);  // comment
  out += "comment";
  return out;
}

std::vector<std::pair<std::string, std::string>> BuilderMembers() {
  return {{"a.npy", *SerializeNpy(Tensor::FromVector<int32_t>({1, 2, 3}))},
          {"b.npy", *SerializeNpy(Tensor::Scalar<double>(0.25))}};
}

TEST(NpzTest, ReadsZip64AndDataDescriptors) {
  for (bool zip64 : {false, true}) {
    for (bool dd : {false, true}) {
      SCOPED_TRACE(std::to_string(zip64) + std::to_string(dd));
      auto r = ParseNpz(BuildZip(BuilderMembers(), zip64, dd), "built.npz");
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->size(), 2u);
      EXPECT_EQ((*r)[0].first, "a");
      EXPECT_EQ((*r)[0].second.data<int32_t>()[2], 3);
      EXPECT_EQ(*(*r)[1].second.data<double>(), 0.25);
    }
  }
}

TEST(NpzBadInputTest, DuplicateAndNonNpyMembers) {
  auto m = BuilderMembers();
  m[1].first = "a.npy";
  EXPECT_EQ(ParseNpz(BuildZip(m, false, false), "dup").status().code(),
            StatusCode::kInvalidArgument);
  m[1].first = "dir/";
  m[1].second = "";
  EXPECT_EQ(ParseNpz(BuildZip(m, false, false), "dir").status().code(),
            StatusCode::kInvalidArgument);
  m[1].first = "b.npy";
  m[1].second = "not npy data";
  auto r = ParseNpz(BuildZip(m, false, false), "junk.npz");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("junk.npz:b.npy"));
}

// ----------------------------------------------------------------------------- fuzz

// Mutates valid inputs deterministically; parsing must fail cleanly or succeed, never crash
// (run under ASan/UBSan).
template <typename ParseFn>
void FuzzBytes(const std::string& valid, int iterations, uint32_t seed, ParseFn parse) {
  std::mt19937 rng(seed);
  int ok = 0;
  for (int it = 0; it < iterations; ++it) {
    std::string s = valid;
    int mode = static_cast<int>(rng() % 6);
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      // Bias half the edits towards the structure (first 128 and last 128 bytes).
      if (rng() % 2) {
        size_t span = std::min<size_t>(128, s.size());
        pos = (rng() % 2) ? rng() % span : s.size() - 1 - rng() % span;
      }
      switch (mode) {
        case 0:
          s[pos] = static_cast<char>(s[pos] ^ (1u << (rng() % 8)));
          break;
        case 1:
          s[pos] = static_cast<char>(rng());
          break;
        case 2:
          s[pos] = (rng() % 2) ? '\xff' : '\0';
          break;
        case 3:
          s.resize(pos);
          break;
        case 4:
          s.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          s.erase(pos, 1 + rng() % 8);
          break;
      }
    }
    if (parse(s)) ++ok;
  }
  // Some mutations (e.g. of data bytes) leave a valid file; most must be rejected.
  EXPECT_LT(ok, iterations);
}

TEST(FuzzTest, NpyMutations) {
  std::string valid = ReadBytes(DataPath("fortran_f8.npy"));
  ASSERT_FALSE(valid.empty());
  FuzzBytes(valid, 4000, 1234, [](const std::string& s) { return ParseNpy(s, "fuzz").ok(); });
  std::string hand = MakeNpy("{'descr': '>i2', 'fortran_order': False, 'shape': (3, 2), }",
                             std::string(12, '\x03'), 2);
  FuzzBytes(hand, 3000, 99, [](const std::string& s) { return ParseNpy(s, "fuzz").ok(); });
}

TEST(FuzzTest, NpzMutations) {
  for (const char* name : {"savez.npz", "savez_compressed.npz"}) {
    SCOPED_TRACE(name);
    std::string valid = ReadBytes(DataPath(name));
    ASSERT_FALSE(valid.empty());
    FuzzBytes(valid, 3000, 42, [](const std::string& s) { return ParseNpz(s, "fuzz").ok(); });
  }
  std::string ours = WrittenNpz(SampleTensors(), true);
  FuzzBytes(ours, 2000, 7, [](const std::string& s) { return ParseNpz(s, "fuzz").ok(); });
  std::string z64 = BuildZip(BuilderMembers(), true, true);
  FuzzBytes(z64, 3000, 8, [](const std::string& s) { return ParseNpz(s, "fuzz").ok(); });
}

TEST(FuzzTest, FileReadersOnMutatedFiles) {
  TempDir dir;
  std::string npy = ReadBytes(DataPath("be_f4.npy"));
  std::string npz = ReadBytes(DataPath("savez_compressed.npz"));
  std::mt19937 rng(5);
  for (int it = 0; it < 300; ++it) {
    std::string a = npy.substr(0, rng() % (npy.size() + 1));
    std::string b = npz;
    b[rng() % b.size()] = static_cast<char>(rng());
    WriteBytes(dir.Path("f.npy"), a);
    WriteBytes(dir.Path("f.npz"), b);
    auto r1 = ReadNpyFile(dir.Path("f.npy"));
    auto r2 = ReadNpzFile(dir.Path("f.npz"));
    (void)r2;
    if (a.size() != npy.size()) {
      EXPECT_FALSE(r1.ok());
    } else {
      EXPECT_TRUE(r1.ok()) << r1.status();
    }
  }
}

}  // namespace
}  // namespace kiln
