# kiln_fuzz_targets: the parser entry points of fuzz/fuzz_targets.h, for the libFuzzer targets
# (fuzz/CMakeLists.txt) and the regression test (tests/CMakeLists.txt).
if(NOT TARGET kiln_fuzz_targets)
  add_library(kiln_fuzz_targets STATIC ${CMAKE_SOURCE_DIR}/fuzz/fuzz_targets.cc)
  target_include_directories(kiln_fuzz_targets PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(kiln_fuzz_targets PUBLIC kiln_io kiln_backend_cpu)
endif()
