// Op family: text — ops on string (and token id) tensors.
//
//   StringNormalizer (10)   [C] or [1, C] strings: stopwords removed (case-sensitive or not),
//                           case changed (LOWER / UPPER / NONE); ASCII case mapping only
//   TfIdfVectorizer (9)     [C] or [N, C] int32/int64/string tokens -> float n-gram counts
//                           (TF, IDF, TFIDF), skip-grams up to max_skip_count
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"

namespace kiln {
namespace {

std::string MapCase(std::string s, bool upper) {
  for (auto& c : s) {
    const auto u = static_cast<unsigned char>(c);
    c = static_cast<char>(upper ? std::toupper(u) : std::tolower(u));
  }
  return s;
}

Status StringNormalizerKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool two_d = x.rank() == 2;
  if (!(x.rank() == 1 || (two_d && x.dim(0) == 1))) {
    return ctx.Error("input must be [C] or [1, C], got " + x.TypeString());
  }
  const std::string action = ctx.GetString("case_change_action");
  if (action != "NONE" && action != "LOWER" && action != "UPPER") {
    return ctx.Error("case_change_action must be NONE, LOWER or UPPER, got '" + action + "'");
  }
  const bool sensitive = ctx.GetInt("is_case_sensitive") != 0;
  std::set<std::string> stop;
  for (const auto& w : ctx.GetStrings("stopwords")) stop.insert(sensitive ? w : MapCase(w, false));
  std::vector<std::string> kept;
  const std::string* in = x.data<std::string>();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    if (stop.count(sensitive ? in[i] : MapCase(in[i], false))) continue;
    kept.push_back(action == "NONE" ? in[i] : MapCase(in[i], action == "UPPER"));
  }
  if (kept.empty()) kept.push_back("");  // ONNX: an all-filtered input gives one empty string
  const int64_t n = static_cast<int64_t>(kept.size());
  KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, DataType::kString,
                                                        two_d ? std::vector<int64_t>{1, n}
                                                              : std::vector<int64_t>{n}));
  std::copy(kept.begin(), kept.end(), out->mutable_data<std::string>());
  return Status::OK();
}

// Token i of `x` as a string key (ids printed in decimal).
std::string Token(const Tensor& x, int64_t i) {
  if (x.dtype() == DataType::kString) return x.data<std::string>()[i];
  if (x.dtype() == DataType::kInt32) return std::to_string(x.data<int32_t>()[i]);
  return std::to_string(x.data<int64_t>()[i]);
}

Status TfIdfKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 1 && x.rank() != 2) return ctx.Error("input must be [C] or [N, C]");
  const int64_t min_n = ctx.GetInt("min_gram_length"), max_n = ctx.GetInt("max_gram_length");
  const int64_t max_skip = ctx.GetInt("max_skip_count");
  const std::string mode = ctx.GetString("mode");
  if (min_n < 1 || max_n < min_n || max_skip < 0) {
    return ctx.Error("need 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0");
  }
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF") {
    return ctx.Error("mode must be TF, IDF or TFIDF, got '" + mode + "'");
  }
  const std::vector<int64_t> counts = ctx.GetInts("ngram_counts");
  const std::vector<int64_t> indexes = ctx.GetInts("ngram_indexes");
  const std::vector<float> weights = ctx.GetFloats("weights");
  std::vector<std::string> pool = ctx.GetStrings("pool_strings");
  if (pool.empty()) {
    for (int64_t v : ctx.GetInts("pool_int64s")) pool.push_back(std::to_string(v));
  }
  // The pool holds the 1-grams from counts[0], the 2-grams from counts[1], ...
  std::map<std::vector<std::string>, int64_t> ngram_id;
  int64_t id = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const int64_t n = static_cast<int64_t>(k) + 1;
    const int64_t begin = counts[k];
    const int64_t end = k + 1 < counts.size() ? counts[k + 1] : static_cast<int64_t>(pool.size());
    if (begin < 0 || end < begin || end > static_cast<int64_t>(pool.size()) || (end - begin) % n) {
      return ctx.Error("ngram_counts does not fit the pool");
    }
    for (int64_t at = begin; at < end; at += n) {
      ngram_id.emplace(std::vector<std::string>(pool.begin() + at, pool.begin() + at + n), id++);
    }
  }
  if (static_cast<int64_t>(indexes.size()) != id) {
    return ctx.Error("ngram_indexes has " + std::to_string(indexes.size()) + " entries, the pool " +
                     std::to_string(id) + " n-grams");
  }
  if (!weights.empty() && weights.size() != indexes.size()) {
    return ctx.Error("weights must have one entry per n-gram");
  }
  int64_t out_size = 0;
  for (int64_t v : indexes) {
    if (v < 0) return ctx.Error("negative ngram_indexes entry");
    out_size = std::max(out_size, v + 1);
  }
  const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
  const int64_t c = x.rank() == 2 ? x.dim(1) : x.dim(0);
  std::vector<int64_t> dims = x.rank() == 2 ? std::vector<int64_t>{rows, out_size}
                                            : std::vector<int64_t>{out_size};
  KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.AllocateOutput(0, DataType::kFloat32, dims));
  float* o = out->mutable_data<float>();
  std::vector<int64_t> tf(static_cast<size_t>(id));
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(tf.begin(), tf.end(), 0);
    for (int64_t skip = 1; skip <= max_skip + 1; ++skip) {
      for (int64_t start = 0; start < c; ++start) {
        std::vector<std::string> gram;
        for (int64_t n = 1, pos = start; n <= max_n && pos < c; ++n, pos += skip) {
          gram.push_back(Token(x, r * c + pos));
          if (n < min_n || (n == 1 && skip > 1)) continue;  // 1-grams count once
          auto it = ngram_id.find(gram);
          if (it != ngram_id.end()) ++tf[it->second];
        }
      }
    }
    for (int64_t g = 0; g < id; ++g) {
      if (tf[g] == 0) continue;
      const double w = weights.empty() ? 1.0 : weights[g];
      const double v = mode == "TF" ? tf[g] : mode == "IDF" ? w : tf[g] * w;
      o[r * out_size + indexes[g]] = static_cast<float>(v);
    }
  }
  return Status::OK();
}

}  // namespace

void RegisterTextOps(OpRegistry& r) {
  MustRegister(r, OpSchema("StringNormalizer")
                      .Doc("Removes stopwords and changes case of a [C] or [1, C] string tensor "
                           "(ASCII case mapping; all removed gives one empty string).")
                      .Inputs(1, 1)
                      .InputTypes(0, {DataType::kString})
                      .AttrDefault("case_change_action", "NONE")
                      .AttrDefault("is_case_sensitive", int64_t{0})
                      .AttrNoDefault("locale", AttrType::kString)
                      .AttrNoDefault("stopwords", AttrType::kStrings)
                      .Infer([](InferContext& ctx) {
                        const Shape& s = ctx.input_shape(0);
                        Shape out;
                        if (s.rank_known() && s.rank() == 2) out = Shape({1, Shape::kUnknownDim});
                        if (s.rank_known() && s.rank() == 1) out = Shape({Shape::kUnknownDim});
                        ctx.SetOutput(0, DataType::kString, out);
                        return Status::OK();
                      })
                      .Kernel(StringNormalizerKernel));
  MustRegister(r, OpSchema("TfIdfVectorizer")
                      .Doc("Counts the pool's n-grams (skip-grams up to max_skip_count) per row; "
                           "TF, IDF (weight if present) or TFIDF (count * weight).")
                      .Inputs(1, 1)
                      .InputTypes(0, {DataType::kString, DataType::kInt32, DataType::kInt64})
                      .AttrNoDefault("max_gram_length", AttrType::kInt, /*required=*/true)
                      .AttrNoDefault("min_gram_length", AttrType::kInt, /*required=*/true)
                      .AttrNoDefault("max_skip_count", AttrType::kInt, /*required=*/true)
                      .AttrNoDefault("mode", AttrType::kString, /*required=*/true)
                      .AttrNoDefault("ngram_counts", AttrType::kInts, /*required=*/true)
                      .AttrNoDefault("ngram_indexes", AttrType::kInts, /*required=*/true)
                      .AttrNoDefault("pool_int64s", AttrType::kInts)
                      .AttrNoDefault("pool_strings", AttrType::kStrings)
                      .AttrNoDefault("weights", AttrType::kFloats)
                      .Infer([](InferContext& ctx) {
                        int64_t size = 0;
                        for (int64_t v : ctx.GetInts("ngram_indexes")) size = std::max(size, v + 1);
                        const Shape& s = ctx.input_shape(0);
                        Shape out;
                        if (s.rank_known() && s.rank() == 2) out = Shape({s.dim(0), size});
                        if (s.rank_known() && s.rank() == 1) out = Shape({size});
                        ctx.SetOutput(0, DataType::kFloat32, out);
                        return Status::OK();
                      })
                      .Kernel(TfIdfKernel));
}

}  // namespace kiln
