if(BRIDGEHEAD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(BRIDGEHEAD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "BRIDGEHEAD_FUZZ needs clang (libFuzzer): configure with the `fuzz` preset")
  endif()
  # Libraries get coverage instrumentation only; tests/fuzz adds the libFuzzer main.
  # UB aborts instead of printing, so the fuzzer records it as a crash.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
