// Lean CPU plans (lean_weights.h).
#include "backends/cpu/lean_weights.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "backends/cpu/tactics.h"

namespace kiln::cpu {
namespace {

inline uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v * 0x9e3779b97f4a7c15ull;
  h = (h << 31) | (h >> 33);
  return h * 0xbf58476d1ce4e5b9ull;
}

uint64_t Hash64(const unsigned char* p, size_t n) {
  uint64_t a = 0x243f6a8885a308d3ull, b = 0x13198a2e03707344ull, c = 0xa4093822299f31d0ull,
           d = 0x082efa98ec4e6c89ull;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a = Mix(a, w[0]);
    b = Mix(b, w[1]);
    c = Mix(c, w[2]);
    d = Mix(d, w[3]);
  }
  uint64_t h = Mix(Mix(Mix(Mix(0x452821e638d01377ull, a), b), c), d);
  for (; i < n; ++i) h = Mix(h, p[i]);
  return Mix(h, n);
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string WeightHash(const Tensor& t) {
  uint64_t h = Hash64(static_cast<const unsigned char*>(t.raw_data()), t.nbytes());
  h = Mix(h, static_cast<uint64_t>(t.dtype()));
  for (int64_t d : t.dims()) h = Mix(h, static_cast<uint64_t>(d));
  return Hex(h);
}

std::vector<ConstSource> ClassifyConsts(const Program& p, const Graph& segment) {
  std::vector<ConstSource> out(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorDef& t = p.tensors[i];
    if (!t.is_const) continue;
    auto init = segment.initializers.find(t.name);
    if (init != segment.initializers.end() && init->second.raw_data() == t.value.raw_data() &&
        init->second.dtype() == t.value.dtype() && init->second.dims() == t.value.dims()) {
      out[i].kind = ConstSource::kInitializer;
      out[i].initializer = t.name;
    } else {
      out[i].kind = ConstSource::kDerived;
    }
  }
  return out;
}

void FillHashes(const Program& p, std::vector<ConstSource>* sources) {
  for (size_t i = 0; i < p.tensors.size() && i < sources->size(); ++i) {
    if (p.tensors[i].is_const && (*sources)[i].kind != ConstSource::kInline) {
      (*sources)[i].hash = WeightHash(p.tensors[i].value);
    }
  }
}

bool SelfContainedPlans() {
  const char* v = std::getenv("KILN_PLAN_SELF_CONTAINED");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

Status ResolveLeanConsts(Program* p, const std::vector<ConstSource>& sources,
                         const Graph& segment, const BuildConfig& config) {
  if (sources.size() != p->tensors.size()) {
    return DataLoss("CPU engine payload: constant sources do not match the tensors");
  }
  std::optional<Program> derived;  // the segment lowered + fused again, made on first need
  for (size_t i = 0; i < p->tensors.size(); ++i) {
    TensorDef& t = p->tensors[i];
    const ConstSource& s = sources[i];
    if (!t.is_const || s.kind == ConstSource::kInline) continue;
    Tensor value;
    std::string from;
    if (s.kind == ConstSource::kInitializer) {
      from = "segment initializer '" + s.initializer + "'";
      auto init = segment.initializers.find(s.initializer);
      if (init == segment.initializers.end()) {
        return FailedPrecondition("lean plan: the " + from + " is not in the segment");
      }
      value = init->second;
    } else {
      from = "weight '" + t.name + "' (derived from the segment's initializers by fusion)";
      if (!derived) {
        ScopedNoTacticTiming no_timing;  // fusion probes only; the plan keeps the tactics
        StatusOr<Program> lowered = LowerSegment(segment, config);
        if (!lowered.ok()) {
          return FailedPrecondition("lean plan: lowering the segment again failed: " +
                                    lowered.status().message());
        }
        FuseProgram(&*lowered);
        derived = std::move(lowered).value();
      }
      if (i >= derived->tensors.size() || !derived->tensors[i].is_const ||
          derived->tensors[i].name != t.name) {
        return FailedPrecondition("lean plan: the " + from +
                                  " is not produced by lowering the segment again");
      }
      value = derived->tensors[i].value;
    }
    if (value.dtype() != DataType::kFloat32 || value.dims() != t.dims) {
      return FailedPrecondition("lean plan: the " + from + " is " + value.TypeString() +
                                ", the plan expects float32" + DimsToString(t.dims));
    }
    const std::string got = WeightHash(value);
    if (got != s.hash) {
      return FailedPrecondition("lean plan: the " + from + " changed since the plan was built" +
                                " (content hash " + got + ", the plan expects " + s.hash + ")");
    }
    t.value = std::move(value);
  }
  return ValidateProgram(*p);
}

}  // namespace kiln::cpu
