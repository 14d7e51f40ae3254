// Tests for the loss op family against a direct reference on random inputs: every reduction,
// class weights, ignore_index, spatial dims, and the log_prob output.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/base/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln {
namespace {

using testing::RunOp;
using testing::TensorsNear;

class LossOps : public ::testing::Test {
 protected:
  LossOps() { RegisterLossOps(r_); }
  OpRegistry r_;
};

// Reference NLL on log-probabilities lp [N, C, D], labels [N, D].
Tensor ReferenceNll(const std::vector<double>& lp, const std::vector<int64_t>& labels, int64_t n,
                    int64_t c, int64_t d, const std::vector<double>& w, const std::string& red,
                    int64_t ignore, std::vector<int64_t> out_dims) {
  std::vector<double> loss(n * d);
  double sum = 0, wsum = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const int64_t l = labels[i * d + j];
      if (l == ignore) continue;
      const double wt = w.empty() ? 1 : w[l];
      loss[i * d + j] = -lp[(i * c + l) * d + j] * wt;
      sum += loss[i * d + j];
      wsum += wt;
    }
  }
  if (red == "none") {
    std::vector<float> f(loss.begin(), loss.end());
    return Tensor::FromVector<float>(f, out_dims, true);
  }
  return Tensor::Scalar<float>(static_cast<float>(red == "sum" ? sum : sum / wsum));
}

TEST_F(LossOps, SoftmaxCrossEntropyAndNllMatchTheReference) {
  const int64_t n = 3, c = 5, d1 = 2, d2 = 2, d = d1 * d2;
  Tensor scores = testing::RandomTensor(DataType::kFloat32, {n, c, d1, d2}, 11, -3, 3);
  Tensor labels = testing::RandomTensor(DataType::kInt64, {n, d1, d2}, 12, 0, c - 1);
  labels.mutable_data<int64_t>()[1] = -1;  // an ignored position
  Tensor weight = testing::RandomTensor(DataType::kFloat32, {c}, 13, 0.1, 2);
  // log_softmax over axis 1, computed here independently.
  std::vector<double> lp(n * c * d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < c; ++k) sum += std::exp(scores.data<float>()[(i * c + k) * d + j]);
      for (int64_t k = 0; k < c; ++k) {
        lp[(i * c + k) * d + j] = scores.data<float>()[(i * c + k) * d + j] - std::log(sum);
      }
    }
  }
  std::vector<float> lpf(lp.begin(), lp.end());
  Tensor log_prob = Tensor::FromVector<float>(lpf, {n, c, d1, d2}, true);
  const std::vector<int64_t> lab(labels.data<int64_t>(), labels.data<int64_t>() + n * d);
  const std::vector<double> w(weight.data<float>(), weight.data<float>() + c);
  for (const char* red : {"none", "sum", "mean"}) {
    for (bool weighted : {false, true}) {
      AttrMap attrs = {{"reduction", Attr::String(red)}, {"ignore_index", Attr::Int(-1)}};
      std::vector<Tensor> in = {scores, labels};
      if (weighted) in.push_back(weight);
      Tensor want = ReferenceNll(lp, lab, n, c, d, weighted ? w : std::vector<double>{}, red, -1,
                                 {n, d1, d2});
      auto sce = RunOp(r_, "SoftmaxCrossEntropyLoss", in, attrs, 2);
      ASSERT_TRUE(sce.ok()) << sce.status();
      EXPECT_TRUE(TensorsNear((*sce)[0], want, 1e-5, 1e-6)) << red << weighted;
      EXPECT_TRUE(TensorsNear((*sce)[1], log_prob, 1e-5, 1e-6));
      in[0] = log_prob;
      auto nll = RunOp(r_, "NegativeLogLikelihoodLoss", in, attrs);
      ASSERT_TRUE(nll.ok()) << nll.status();
      EXPECT_TRUE(TensorsNear((*nll)[0], want, 1e-5, 1e-6)) << red << weighted;
    }
  }
}

TEST_F(LossOps, BadTargetsAndShapesAreErrors) {
  Tensor x = testing::RandomTensor(DataType::kFloat32, {2, 3}, 21);
  EXPECT_FALSE(RunOp(r_, "NegativeLogLikelihoodLoss", {x, Tensor::FromVector<int64_t>({0, 3})}).ok());
  EXPECT_FALSE(RunOp(r_, "NegativeLogLikelihoodLoss", {x, Tensor::FromVector<int64_t>({0})}).ok());
  EXPECT_FALSE(RunOp(r_, "SoftmaxCrossEntropyLoss",
                     {x, Tensor::FromVector<int64_t>({0, 1}), Tensor::FromVector<float>({1, 2})})
                   .ok());
  EXPECT_FALSE(RunOp(r_, "SoftmaxCrossEntropyLoss", {x, Tensor::FromVector<int64_t>({0, 1})},
                     {{"reduction", Attr::String("avg")}})
                   .ok());
}

}  // namespace
}  // namespace kiln
