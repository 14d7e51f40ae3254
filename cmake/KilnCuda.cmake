# The optional CUDA engine backend (src/backends/cuda): built when CMake finds nvcc, the CUDA
# toolkit (cudart, cuBLASLt) and cuDNN. -DKILN_WITH_CUDA=OFF skips it. Sets KILN_HAVE_CUDA and,
# when ON, the targets kiln_cuda_kernels (nvcc) and kiln_backend_cuda.
option(KILN_WITH_CUDA "Build the CUDA engine backend when the CUDA toolkit and cuDNN are found" ON)
set(KILN_CUDA_ARCHITECTURES "90" CACHE STRING "GPU architectures of the CUDA kernels (90: H100/H200)")
set(KILN_HAVE_CUDA OFF)
if(KILN_WITH_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    find_package(CUDAToolkit QUIET)
    if(CUDAToolkit_FOUND)
      find_path(CUDNN_INCLUDE_DIR cudnn.h
                HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include/x86_64-linux-gnu /usr/include)
      find_library(CUDNN_LIBRARY cudnn
                   HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib
                         ${CUDAToolkit_LIBRARY_DIR}/../lib /usr/lib/x86_64-linux-gnu)
      if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY AND TARGET CUDA::cublasLt AND TARGET CUDA::cudart)
        set(KILN_HAVE_CUDA ON)
      endif()
    endif()
  endif()
  if(NOT KILN_HAVE_CUDA)
    message(STATUS "kiln: CUDA backend not built (needs nvcc, the CUDA toolkit with cuBLASLt, and cuDNN)")
  endif()
endif()

if(KILN_HAVE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES ${KILN_CUDA_ARCHITECTURES})
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  message(STATUS "kiln: CUDA backend ON (CUDA ${CUDAToolkit_VERSION}, cuDNN ${CUDNN_LIBRARY}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
  file(GLOB KILN_CUDA_KERNEL_SRCS CONFIGURE_DEPENDS src/backends/cuda/*.cu)
  add_library(kiln_cuda_kernels STATIC ${KILN_CUDA_KERNEL_SRCS})
  # The directory's C++ flags (-Wall, sanitizers) are not nvcc flags: the host compiler gets
  # the warnings through -Xcompiler.
  set_target_properties(kiln_cuda_kernels PROPERTIES COMPILE_OPTIONS
                        "-Xcompiler=-Wall,-Wextra" POSITION_INDEPENDENT_CODE ON)
  target_include_directories(kiln_cuda_kernels PRIVATE src)
  target_link_libraries(kiln_cuda_kernels PUBLIC CUDA::cudart)

  file(GLOB KILN_BACKEND_CUDA_SRCS CONFIGURE_DEPENDS src/backends/cuda/*.cc)
  add_library(kiln_backend_cuda STATIC ${KILN_BACKEND_CUDA_SRCS})
  target_include_directories(kiln_backend_cuda PUBLIC ${CUDNN_INCLUDE_DIR})
  target_link_libraries(kiln_backend_cuda PUBLIC kiln_backend_cpu kiln_cuda_kernels CUDA::cudart
                        CUDA::cublasLt ${CUDNN_LIBRARY})
  target_compile_definitions(kiln_backend_cuda PUBLIC KILN_HAVE_CUDA=1)
endif()
