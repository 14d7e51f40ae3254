// fuzz/fuzz_targets.h — one entry point per parser, shared by the libFuzzer targets
// (fuzz/fuzz_<parser>.cc, KILN_FUZZ build) and the regression test
// (tests/io/fuzz_regression_test.cc, every build), which feeds each input kept under
// tests/data/fuzz_regressions/<parser>/ to the same function.
//
// Each function parses `bytes` the way kiln reads that format from a file and returns the
// parser's Status. Parsers that take paths get their input written into a per-process scratch
// directory. Multi-file formats (TF.js, SavedModel, TensorBundle) take a small archive:
//   repeated { u8 name_len | name | u32 little-endian data_len | data }
// where name is a relative path ([A-Za-z0-9._-/], no ".." component); a truncated record keeps
// what remains. fuzz/make_seeds.py packs fixture directories this way.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln::fuzz {

struct Target {
  const char* name;  // "onnx", "graphdef_pb", ... (= the regression directory name)
  Status (*run)(std::string_view bytes);
};

// Every parser target, in a fixed order.
const std::vector<Target>& Targets();
// The target named `name`, or nullptr.
const Target* FindTarget(std::string_view name);

// Sets the limits the fuzzers run with (smaller tensor cap so that legitimate large
// allocations do not look like leaks/OOMs) and quiets logging. Call before any parse.
void InitForFuzzing();

// Packs files into the archive format above (used by tests).
std::string PackTree(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace kiln::fuzz
