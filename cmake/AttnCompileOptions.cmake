# Compile options shared by every target of the project (not propagated to consumers'
# own sources beyond what they need to link).
add_library(attn_compile_options INTERFACE)
target_compile_options(attn_compile_options INTERFACE
  $<BUILD_INTERFACE:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>
  $<BUILD_INTERFACE:$<$<BOOL:${ATTN_WARNINGS_AS_ERRORS}>:-Werror>>)
if(ATTN_NATIVE)
  target_compile_options(attn_compile_options INTERFACE $<BUILD_INTERFACE:-march=native>)
else()
  target_compile_options(attn_compile_options INTERFACE $<BUILD_INTERFACE:-march=x86-64-v3>)
endif()
if(ATTN_SANITIZE)
  # Every UBSan report is fatal (-fno-sanitize-recover=all), so a test cannot pass over one.
  target_compile_options(attn_compile_options INTERFACE
    $<BUILD_INTERFACE:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  # Not only in the build tree: a program linking the installed, sanitized static
  # library needs the sanitizer runtimes too.
  target_link_options(attn_compile_options INTERFACE -fsanitize=address,undefined)
endif()
if(ATTN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ATTN_FUZZ needs clang's libFuzzer, but the C++ compiler is ${CMAKE_CXX_COMPILER_ID} "
                        "(${CMAKE_CXX_COMPILER}). Configure a fresh build directory with CC=clang CXX=clang++, "
                        "as scripts/fuzz.sh does.")
  endif()
  # Coverage instrumentation for libFuzzer in every target (the harnesses add
  # -fsanitize=fuzzer, libFuzzer's main, when they link), with ASan + UBSan, fatal.
  target_compile_options(attn_compile_options INTERFACE
    $<BUILD_INTERFACE:-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  target_link_options(attn_compile_options INTERFACE $<BUILD_INTERFACE:-fsanitize=address,undefined>)
endif()
