# The Python package (python/): decides whether it is built and, when it is, compiles every
# kiln library as position-independent code so the static libraries can be linked into the
# extension module. Included by the top-level CMakeLists.txt before any library is declared.
#
#   KILN_BUILD_PYTHON = AUTO (build when pybind11 and Python 3 headers are found; never with
#                       KILN_SANITIZE / KILN_FUZZ), ON (required: an error when not found) or
#                       OFF. The default is OFF for now because turning it on recompiles every
#                       library of a build directory as PIC; scripts/test.sh passes ON. Making
#                       AUTO the default is the one-word change below.
#   KILN_PYTHON_EXECUTABLE: the interpreter to build for; default Debian's /usr/bin/python3 (the
#                       `python3` first on PATH may be a pyenv shim without numpy or headers).
#
# Sets KILN_PYTHON_ENABLED.

set(KILN_BUILD_PYTHON "OFF" CACHE STRING "Build the Python package: AUTO, ON or OFF")
set_property(CACHE KILN_BUILD_PYTHON PROPERTY STRINGS AUTO ON OFF)
set(KILN_PYTHON_ENABLED OFF)

string(TOUPPER "${KILN_BUILD_PYTHON}" _kiln_py_mode)
if(_kiln_py_mode STREQUAL "AUTO" AND (KILN_SANITIZE OR KILN_FUZZ))
  # A sanitized extension cannot be loaded into an unsanitized interpreter.
  set(_kiln_py_mode OFF)
endif()

if(NOT _kiln_py_mode STREQUAL "OFF")
  if(NOT DEFINED KILN_PYTHON_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(KILN_PYTHON_EXECUTABLE /usr/bin/python3)
  endif()
  set(KILN_PYTHON_EXECUTABLE "${KILN_PYTHON_EXECUTABLE}" CACHE FILEPATH
      "Python interpreter the kiln package is built for")
  if(KILN_PYTHON_EXECUTABLE)
    set(Python_EXECUTABLE "${KILN_PYTHON_EXECUTABLE}")
  endif()
  find_package(Python 3.8 COMPONENTS Interpreter Development.Module)
  if(Python_FOUND)
    find_package(pybind11 2.6 CONFIG)
  endif()
  if(Python_FOUND AND pybind11_FOUND)
    set(KILN_PYTHON_ENABLED ON)
  elseif(_kiln_py_mode STREQUAL "ON")
    message(FATAL_ERROR "KILN_BUILD_PYTHON=ON but Python 3 development files or pybind11 were not "
                        "found (Debian: apt-get install python3-dev pybind11-dev python3-numpy)")
  else()
    message(STATUS "kiln: Python package not built (pybind11 or Python 3 headers not found)")
  endif()
endif()

if(KILN_PYTHON_ENABLED)
  message(STATUS "kiln: building the Python package for ${Python_EXECUTABLE} "
                 "(pybind11 ${pybind11_VERSION})")
  # Static libraries linked into a shared extension must be PIC. -fno-semantic-interposition
  # keeps GCC inlining and calling functions of the same library directly, as it does without
  # -fPIC (nothing interposes kiln's symbols).
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options(-fno-semantic-interposition)
  endif()
endif()
