// The checks every engine backend makes before it runs (engine/engine_inputs.h).
#include "engine/engine_inputs.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(EngineInputs, CountPresenceAndDtype) {
  const Tensor a = Tensor::FromVector<float>({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});
  const Tensor i = Tensor::FromVector<int64_t>({1, 2});
  auto ok = EngineInputDims({&a}, 1, "CPU engine");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, (std::vector<std::vector<int64_t>>{{2, 3}}));
  auto count = EngineInputDims({&a, &a}, 1, "CPU engine");
  EXPECT_EQ(count.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(count.status().message().find("CPU engine expects 1 inputs, got 2"), std::string::npos);
  auto null = EngineInputDims({nullptr}, 1, "CUDA engine");
  EXPECT_NE(null.status().message().find("CUDA engine input 0 is missing"), std::string::npos);
  auto ints = EngineInputDims({&a, &i}, 2, "CPU engine");
  EXPECT_EQ(ints.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ints.status().message().find("input 1 must be float32, got int64"), std::string::npos)
      << ints.status();
  // Integer inputs where the engine takes them (a CUDA engine's embedding indices), not
  // elsewhere, and never float there.
  const std::vector<char> second = {0, 1};
  EXPECT_TRUE(EngineInputDims({&a, &i}, 2, "CUDA engine", 0, &second).ok());
  auto swapped = EngineInputDims({&i, &a}, 2, "CUDA engine", 0, &second);
  EXPECT_NE(swapped.status().message().find("input 0 must be float32, got int64"),
            std::string::npos);
  auto f = EngineInputDims({&a, &a}, 2, "CUDA engine", 0, &second);
  EXPECT_NE(f.status().message().find("input 1 must be int64 or int32, got float32"),
            std::string::npos)
      << f.status();
}

TEST(EngineInputs, StaticShapeRule) {
  BuildConfig cfg;
  cfg.input_shapes = {{8, 3, 4}};
  EXPECT_TRUE(ShapesWithinBuild(cfg, {{8, 3, 4}}));
  EXPECT_TRUE(ShapesWithinBuild(cfg, {{1, 3, 4}}));   // any batch up to the built one
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{9, 3, 4}}));  // above max_batch_size
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{0, 3, 4}}));
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{2, 3, 5}}));  // another non-batch dim
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{2, 3}}));     // another rank
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{2, 3, 4}, {2}}));
  cfg.exact_shapes = true;  // dynamic-mode engines: exactly the shapes they were built for
  EXPECT_TRUE(ShapesWithinBuild(cfg, {{8, 3, 4}}));
  EXPECT_FALSE(ShapesWithinBuild(cfg, {{1, 3, 4}}));
  const Status s = ShapesRejected("CPU engine", {{9, 3, 4}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("CPU engine cannot run input shapes "), std::string::npos);
  EXPECT_NE(s.message().find("9"), std::string::npos);
}

}  // namespace
}  // namespace kiln
