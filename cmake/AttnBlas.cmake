# OpenBLAS, preferring Debian's OpenMP build: called inside an OpenMP parallel region it
# runs single-threaded by itself, so the attention kernel does not oversubscribe
# (docs/kernel.md). attn_blas is an interface target, exported with attn::core.
if(NOT TARGET attn_blas)
  find_package(OpenBLAS CONFIG QUIET)
  if(OpenBLAS_FOUND AND EXISTS "${OpenBLAS_LIBRARIES}")
    set(ATTN_BLAS_LIBRARY "${OpenBLAS_LIBRARIES}")
    set(ATTN_BLAS_INCLUDE_DIR "${OpenBLAS_INCLUDE_DIRS}")
  else()
    find_library(ATTN_BLAS_LIBRARY NAMES openblas REQUIRED)
    find_path(ATTN_BLAS_INCLUDE_DIR NAMES cblas.h PATH_SUFFIXES openblas-openmp openblas REQUIRED)
  endif()
  add_library(attn_blas INTERFACE)
  target_link_libraries(attn_blas INTERFACE "${ATTN_BLAS_LIBRARY}")
  target_include_directories(attn_blas SYSTEM INTERFACE "${ATTN_BLAS_INCLUDE_DIR}")
  message(STATUS "attn: BLAS ${ATTN_BLAS_LIBRARY}")
endif()
