// Device-resident tensors (Tensor::WrapDevice / ToHost / ToDevice) through the runtime, on a
// machine without a GPU: a fake "device" whose memory is host memory, registered as the copiers
// the CUDA backend registers. It checks the plumbing every build has (what the executor does
// with a device feed, the host engine's guard, the fetch placement); the CUDA engine itself
// reading and writing device memory is checked by test_backend_cuda on a GPU.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

#include "engine/engine_inputs.h"
#include "io/onnx/onnx_import.h"
#include "kiln/convert.h"
#include "kiln/session.h"
#include "ops/op_test_util.h"
#include "runtime/onnx_builder.h"

namespace kiln {
namespace {

using testing::OnnxBuilder;

constexpr int kFakeDevice = 3;
std::atomic<int> g_to_host{0}, g_to_device{0};

Status FakeToHost(void* host, const void* device_data, size_t bytes, int device) {
  if (device != kFakeDevice) return InvalidArgument("no fake device " + std::to_string(device));
  ++g_to_host;
  std::memcpy(host, device_data, bytes);
  return Status::OK();
}

StatusOr<Tensor> FakeToDevice(const Tensor& t, int device) {
  if (device != kFakeDevice) return InvalidArgument("no fake device " + std::to_string(device));
  ++g_to_device;
  Tensor copy = t.Clone();
  return Tensor::WrapDevice(copy.dtype(), copy.dims(), copy.raw_mutable_data(),
                            std::make_shared<Tensor>(copy), device);
}

class DeviceTensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DeviceCopiers c;
    c.to_host = &FakeToHost;
    c.to_device = &FakeToDevice;
    RegisterDeviceCopiers(c);
    g_to_host = 0;
    g_to_device = 0;
  }
  void TearDown() override { RegisterDeviceCopiers(DeviceCopiers{}); }
};

using testing::DenseModel;  // runtime/onnx_builder.h

Graph DenseGraph() {
  auto g = ImportOnnxBytes(DenseModel(), "dense.onnx", "");
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(g).value();
}

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

TEST_F(DeviceTensorTest, WithoutACudaBackendDeviceTensorsSaySo) {
  RegisterDeviceCopiers(DeviceCopiers{});
  Tensor host = testing::RandomTensor(DataType::kFloat32, {2, 4}, 1);
  auto d = host.ToDevice(0);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("no CUDA backend"), std::string::npos) << d.status();
  Tensor fake = Tensor::WrapDevice(DataType::kFloat32, {2, 4}, host.raw_mutable_data(),
                                   nullptr, 0);
  EXPECT_TRUE(fake.on_device());
  auto h = fake.ToHost();
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("lives on CUDA device 0"), std::string::npos)
      << h.status();
  // A Session given such a feed fails with that message, it does not read the pointer.
  auto s = Session::FromGraph(DenseGraph());
  ASSERT_TRUE(s.ok()) << s.status();
  auto r = (*s)->Run({{"x", fake}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no CUDA backend"), std::string::npos) << r.status();
}

TEST_F(DeviceTensorTest, RoundTripKeepsValues) {
  Tensor host = testing::RandomTensor(DataType::kFloat32, {3, 5}, 2);
  auto d = host.ToDevice(kFakeDevice);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->on_device());
  EXPECT_EQ(d->device(), kFakeDevice);
  EXPECT_EQ(d->dims(), host.dims());
  auto again = d->ToDevice(kFakeDevice);  // already there: no copy
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->raw_data(), d->raw_data());
  auto back = d->ToHost();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->on_device());
  EXPECT_TRUE(back->BitwiseEqual(host));
  EXPECT_TRUE(d->BitwiseEqual(host));
  Tensor cloned = d->Clone();  // a host copy
  EXPECT_FALSE(cloned.on_device());
  EXPECT_TRUE(cloned.BitwiseEqual(host));
  EXPECT_NE(d->DebugString().find("(on cuda:3)"), std::string::npos) << d->DebugString();
  auto reshaped = d->Reshaped({15});
  ASSERT_TRUE(reshaped.ok());
  EXPECT_TRUE(reshaped->on_device());
  EXPECT_EQ(g_to_device.load(), 1);
}

TEST_F(DeviceTensorTest, HostKernelsGetAHostCopyOfADeviceFeed) {
  auto s = Session::FromGraph(DenseGraph());
  ASSERT_TRUE(s.ok()) << s.status();
  Tensor x = testing::RandomTensor(DataType::kFloat32, {4, 4}, 3);
  auto want = (*s)->Run({{"x", x}});
  ASSERT_TRUE(want.ok()) << want.status();
  auto dx = x.ToDevice(kFakeDevice);
  ASSERT_TRUE(dx.ok());
  for (bool on_device : {false, true}) {
    g_to_host = 0;
    RunOptions opts;
    opts.outputs_on_device = on_device;
    auto got = (*s)->Run({{"x", *dx}}, {"y", "x"}, opts);
    ASSERT_TRUE(got.ok()) << got.status();
    // Only a CUDA engine produces device values: y is a host tensor either way.
    EXPECT_FALSE((*got)[0].on_device());
    EXPECT_EQ(Values((*got)[0]), Values((*want)[0]));
    // The feed itself, fetched back: the MatMul's copy replaced it, so it is on the host.
    EXPECT_FALSE((*got)[1].on_device());
    EXPECT_EQ(Values((*got)[1]), Values(x));
    EXPECT_EQ(g_to_host.load(), 1) << "one copy, shared by every host reader";
  }
}

TEST_F(DeviceTensorTest, HostEngineOpGetsAHostCopyAndEnginesRejectForeignDeviceInputs) {
  ConversionParams params;
  params.minimum_segment_size = 1;
  params.max_batch_size = 2;
  auto converted = CreateInferenceGraph(DenseGraph(), params);
  ASSERT_TRUE(converted.ok()) << converted.status();
  ASSERT_EQ(converted->summary().engines.size(), 1u) << converted->summary().ToString();
  auto s = Session::FromGraph(converted->graph());
  ASSERT_TRUE(s.ok()) << s.status();
  Tensor x = testing::RandomTensor(DataType::kFloat32, {2, 4}, 4);
  auto want = (*s)->Run({{"x", x}});
  ASSERT_TRUE(want.ok()) << want.status();
  auto dx = x.ToDevice(kFakeDevice);
  ASSERT_TRUE(dx.ok());
  RunStats stats;
  RunOptions opts;
  opts.profile = true;
  auto got = (*s)->Run({{"x", *dx}}, {}, opts, &stats);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Values((*got)[0]), Values((*want)[0]));
  EXPECT_EQ(g_to_host.load(), 1);
  ASSERT_EQ(stats.nodes.size(), 1u);
  EXPECT_EQ(stats.nodes[0].op_type, "EngineOp");
  // An engine never dereferences a device pointer it cannot read.
  std::vector<const Tensor*> in = {&*dx};
  auto dims = EngineInputDims(in, 1, "CPU engine");
  ASSERT_FALSE(dims.ok());
  EXPECT_NE(dims.status().message().find("lives on CUDA device 3; this engine reads host"),
            std::string::npos)
      << dims.status();
  EXPECT_FALSE(EngineInputDims(in, 1, "CUDA engine", 0).ok());
  EXPECT_TRUE(EngineInputDims(in, 1, "CUDA engine", kFakeDevice).ok());
}

}  // namespace
}  // namespace kiln
