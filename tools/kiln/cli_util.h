// Shared pieces of the `kiln` CLI: argument parsing, feeds, printing, JSON.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

// A tiny option parser: flags ("--json"), valued options ("--seed 3" or "--seed=3"),
// repeatable options ("--input a=x.npy --input b=y.npy") and positionals.
class Args {
 public:
  // `valued` lists options that take a value; anything else starting with "--" is a flag.
  static StatusOr<Args> Parse(int argc, char** argv, const std::vector<std::string>& valued,
                              const std::vector<std::string>& flags);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

// "1,3,224,224" -> dims.
StatusOr<std::vector<int64_t>> ParseDims(const std::string& text);
// Splits "a,b,c".
std::vector<std::string> SplitList(const std::string& text, char sep = ',');

// Builds feeds: --input NAME=FILE.npy for given ones, random non-constant values (seeded) for
// the rest; unknown dimensions come from --shape NAME=d0,d1,... or default to 1.
// `resolve` maps a user's name to the model's (Graph::ResolveName: "node" -> "node:0",
// SavedModel signature keys); names are matched as given when it is empty.
StatusOr<Feeds> MakeFeeds(const std::vector<TensorInfo>& inputs,
                          const std::vector<std::string>& input_specs,
                          const std::vector<std::string>& shape_specs, uint32_t seed,
                          const std::function<std::string(const std::string&)>& resolve = {});

// A random tensor with values that are never all equal: floats in [-1, 1), integers in
// [0, 10), bools 50/50.
Tensor RandomTensor(DataType dtype, const std::vector<int64_t>& dims, uint32_t seed);

// Every character outside [A-Za-z0-9._-] replaced by '_'.
std::string SanitizeFileName(const std::string& name);

// "float32[1,10] min -3.2 max 4.1 mean 0.12  [0.1, 0.2, ...]"
std::string SummarizeTensor(const Tensor& t, int max_values = 6);

std::string JsonEscape(const std::string& s);

// --tags a,b / --signature KEY (SavedModel directories) as LoadOptions (cmd_freeze.cc).
LoadOptions LoadOptionsFromArgs(const Args& args);

}  // namespace kiln::cli
