// The test_int8 binary tests INT8 kernels, calibration and the conversion flow on small shapes,
// which the INT8 layer policy (backends/cpu/int8_policy.h) would keep in floating point on CPUs
// without AMX. This environment sets the policy's thresholds to 0,0 (every INT8-capable layer in
// INT8) for the whole binary, and KILN_CPU_INT8_MIN_DOT=0,0 for the kiln CLI it starts;
// int8_policy_test.cc sets the real thresholds explicitly (ScopedInt8Thresholds).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

#include "backends/cpu/int8_policy.h"

namespace kiln {
namespace {

class AllInt8Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    ::setenv("KILN_CPU_INT8_MIN_DOT", "0,0", 1);
    scope_ = std::make_unique<cpu::ScopedInt8Thresholds>(cpu::Int8MinDot{0, 0});
  }
  void TearDown() override { scope_.reset(); }

 private:
  std::unique_ptr<cpu::ScopedInt8Thresholds> scope_;
};

[[maybe_unused]] ::testing::Environment* const kEnv =
    ::testing::AddGlobalTestEnvironment(new AllInt8Environment);

}  // namespace
}  // namespace kiln
