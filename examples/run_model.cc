// Loads a model with kiln's public C++ API, feeds every input a ramp of values, runs it and
// prints the outputs.   usage: example_run_model MODEL.onnx [dim-for-unknown-dims]
#include <cstdio>
#include <cstdlib>

#include "kiln/session.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx [dim-for-unknown-dims]\n", argv[0]);
    return 2;
  }
  const int64_t unknown_dim = argc > 2 ? std::atoll(argv[2]) : 1;

  auto session = kiln::Session::Load(argv[1]);
  if (!session.ok()) {
    std::fprintf(stderr, "error: %s\n", session.status().ToString().c_str());
    return 1;
  }

  kiln::Feeds feeds;
  for (const kiln::TensorInfo& in : (*session)->inputs()) {
    std::vector<int64_t> dims;
    for (int64_t d : in.shape.dims()) dims.push_back(d < 0 ? unknown_dim : d);
    auto tensor = kiln::Tensor::Create(kiln::DataType::kFloat32, dims);
    if (!tensor.ok()) {
      std::fprintf(stderr, "error: %s\n", tensor.status().ToString().c_str());
      return 1;
    }
    float* data = tensor->mutable_data<float>();
    for (int64_t i = 0; i < tensor->num_elements(); ++i) data[i] = static_cast<float>(i % 17) / 8 - 1;
    feeds.emplace_back(in.name, *tensor);
  }

  auto outputs = (*session)->Run(feeds);
  if (!outputs.ok()) {
    std::fprintf(stderr, "error: %s\n", outputs.status().ToString().c_str());
    return 1;
  }
  for (size_t k = 0; k < outputs->size(); ++k) {
    std::printf("%s = %s\n", (*session)->outputs()[k].name.c_str(),
                (*outputs)[k].DebugString().c_str());
  }
  return 0;
}
