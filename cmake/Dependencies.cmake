# Every dependency comes from a Debian package; nothing is fetched at build time.
# A missing one stops the configure step with the package to install.
macro(gr_require_package name debian)
  find_package(${name} CONFIG QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "gemmarun needs ${name}: apt-get install ${debian}")
  endif()
endmacro()

macro(gr_require_header var header debian)
  find_path(${var} ${header} PATH_SUFFIXES stb)
  if(NOT ${var})
    message(FATAL_ERROR "gemmarun needs ${header}: apt-get install ${debian}")
  endif()
endmacro()

gr_require_package(hwy libhwy-dev)                  # portable SIMD with runtime dispatch
gr_require_package(nlohmann_json nlohmann-json3-dev) # config.json, safetensors headers
gr_require_package(CLI11 libcli11-dev)              # command-line flags
gr_require_header(GR_STB_INCLUDE_DIR stb_image.h libstb-dev)  # PNG/JPEG decoding
find_package(Threads REQUIRED)

if(GEMMARUN_TESTS)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND)
    find_package(GTest QUIET)
  endif()
  if(NOT GTest_FOUND)
    message(FATAL_ERROR "gemmarun's tests need GoogleTest: apt-get install libgtest-dev libgmock-dev (or configure with -DGEMMARUN_TESTS=OFF)")
  endif()
endif()
if(GEMMARUN_BENCH)
  gr_require_package(benchmark libbenchmark-dev)    # micro-benchmarks of the kernels
endif()
