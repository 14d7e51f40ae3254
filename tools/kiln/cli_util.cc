#include "cli_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "core/strings.h"
#include "io/npy/npy.h"

namespace kiln::cli {

StatusOr<Args> Args::Parse(int argc, char** argv, const std::vector<std::string>& valued,
                           const std::vector<std::string>& flags) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      args.positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    bool is_valued = std::find(valued.begin(), valued.end(), name) != valued.end();
    bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (!is_valued && !is_flag) return InvalidArgument("unknown option --" + name);
    if (is_valued && !has_value) {
      if (i + 1 >= argc) return InvalidArgument("option --" + name + " needs a value");
      value = argv[++i];
    } else if (is_flag && has_value) {
      return InvalidArgument("option --" + name + " takes no value");
    }
    args.values_[name].push_back(value);
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> SplitList(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream ss(text);
  while (std::getline(ss, cur, sep)) {
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

StatusOr<std::vector<int64_t>> ParseDims(const std::string& text) {
  std::vector<int64_t> dims;
  for (const auto& part : SplitList(text, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (end == part.c_str() || *end != '\0' || v < 0) {
      return InvalidArgument("bad dimension '" + part + "' in shape '" + text + "'");
    }
    dims.push_back(v);
  }
  return dims;
}

Tensor RandomTensor(DataType dtype, const std::vector<int64_t>& dims, uint32_t seed) {
  Tensor t = Tensor::Empty(dtype, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int> small(0, 9);
  const int64_t n = t.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DataType::kFloat32: t.mutable_data<float>()[i] = static_cast<float>(unit(rng)); break;
      case DataType::kFloat64: t.mutable_data<double>()[i] = unit(rng); break;
      case DataType::kFloat16:
        t.mutable_data<Float16>()[i] = Float16(static_cast<float>(unit(rng)));
        break;
      case DataType::kBFloat16:
        t.mutable_data<BFloat16>()[i] = BFloat16(static_cast<float>(unit(rng)));
        break;
      case DataType::kBool: t.mutable_data<bool>()[i] = small(rng) < 5; break;
      case DataType::kInt8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(small(rng)); break;
      case DataType::kUInt8: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(small(rng)); break;
      case DataType::kInt16: t.mutable_data<int16_t>()[i] = static_cast<int16_t>(small(rng)); break;
      case DataType::kUInt16: t.mutable_data<uint16_t>()[i] = static_cast<uint16_t>(small(rng)); break;
      case DataType::kInt32: t.mutable_data<int32_t>()[i] = small(rng); break;
      case DataType::kUInt32: t.mutable_data<uint32_t>()[i] = static_cast<uint32_t>(small(rng)); break;
      case DataType::kInt64: t.mutable_data<int64_t>()[i] = small(rng); break;
      case DataType::kUInt64: t.mutable_data<uint64_t>()[i] = static_cast<uint64_t>(small(rng)); break;
      case DataType::kString: t.mutable_data<std::string>()[i] = std::to_string(small(rng)); break;
      default: break;
    }
  }
  return t;
}

StatusOr<Feeds> MakeFeeds(const std::vector<TensorInfo>& inputs,
                          const std::vector<std::string>& input_specs,
                          const std::vector<std::string>& shape_specs, uint32_t seed,
                          const std::function<std::string(const std::string&)>& resolve) {
  auto find_input = [&](const std::string& asked) -> const TensorInfo* {
    const std::string name = resolve ? resolve(asked) : asked;
    for (const auto& i : inputs) {
      if (i.name == name) return &i;
    }
    return nullptr;
  };
  auto split_spec = [](const std::string& spec, const char* option)
      -> StatusOr<std::pair<std::string, std::string>> {
    auto eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return InvalidArgument(std::string("--") + option + " expects NAME=VALUE, got '" + spec + "'");
    }
    return std::make_pair(spec.substr(0, eq), spec.substr(eq + 1));
  };
  std::map<std::string, Tensor> given;
  for (const auto& spec : input_specs) {
    KILN_ASSIGN_OR_RETURN(auto kv, split_spec(spec, "input"));
    if (find_input(kv.first) == nullptr) {
      std::string names;
      for (const auto& i : inputs) names += (names.empty() ? "" : ", ") + i.name;
      return NotFound("--input " + kv.first + ": the model has no input of that name (inputs: " +
                      names + ")");
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, ReadNpyFile(kv.second));
    given[find_input(kv.first)->name] = std::move(t);
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& spec : shape_specs) {
    KILN_ASSIGN_OR_RETURN(auto kv, split_spec(spec, "shape"));
    if (find_input(kv.first) == nullptr) {
      return NotFound("--shape " + kv.first + ": the model has no input of that name");
    }
    KILN_ASSIGN_OR_RETURN(shapes[find_input(kv.first)->name], ParseDims(kv.second));
  }
  Feeds feeds;
  uint32_t k = 0;
  for (const auto& in : inputs) {
    ++k;
    if (auto it = given.find(in.name); it != given.end()) {
      feeds.emplace_back(in.name, it->second);
      continue;
    }
    std::vector<int64_t> dims;
    if (auto it = shapes.find(in.name); it != shapes.end()) {
      dims = it->second;
      if (!in.shape.Accepts(dims)) {
        return InvalidArgument("--shape " + in.name + "=" + DimsToString(dims) +
                               " does not fit the declared shape " + in.shape.ToString());
      }
    } else {
      if (!in.shape.rank_known()) {
        return InvalidArgument("input '" + in.name +
                               "' has unknown rank: give --shape NAME=d0,d1,... or --input");
      }
      for (int64_t d : in.shape.dims()) dims.push_back(d < 0 ? 1 : d);
    }
    DataType dt = in.dtype == DataType::kUndefined ? DataType::kFloat32 : in.dtype;
    auto probe = Tensor::Create(dt, dims);  // validates the size before filling
    if (!probe.ok()) return probe.status().WithContext("input '" + in.name + "'");
    feeds.emplace_back(in.name, RandomTensor(dt, dims, seed * 7919u + k));
  }
  return feeds;
}

std::string SanitizeFileName(const std::string& name) {
  std::string out = name;
  for (auto& c : out) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

std::string SummarizeTensor(const Tensor& t, int max_values) {
  std::ostringstream os;
  os << t.TypeString();
  if (t.dtype() != DataType::kString && t.num_elements() > 0) {
    double mn = t.GetAsDouble(0), mx = mn, sum = 0;
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      double v = t.GetAsDouble(i);
      mn = std::min(mn, v);
      mx = std::max(mx, v);
      sum += v;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "  min %.6g  max %.6g  mean %.6g", mn, mx,
                  sum / static_cast<double>(t.num_elements()));
    os << buf;
  }
  os << "\n      values: " << t.DebugString(max_values).substr(t.TypeString().size() + 1);
  return os.str();
}

std::string JsonEscape(const std::string& s) { return ::kiln::JsonEscape(s); }

}  // namespace kiln::cli
