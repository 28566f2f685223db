# Warning flags for every project target (not for third-party headers, which are SYSTEM).
add_library(bridgehead_warnings INTERFACE)
target_compile_options(bridgehead_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
if(BRIDGEHEAD_WERROR)
  target_compile_options(bridgehead_warnings INTERFACE -Werror)
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  target_compile_definitions(bridgehead_warnings INTERFACE _GLIBCXX_ASSERTIONS)
endif()
