// libFuzzer target for the plan parser (fuzz/fuzz_targets.h; scripts/fuzz.sh runs it).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kiln::fuzz::InitForFuzzing();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kiln::fuzz::Target* target = kiln::fuzz::FindTarget("plan");
  (void)target->run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
