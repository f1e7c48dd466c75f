# One warnings interface target, linked to our own targets only (STYLE.md 20).
add_library(bm_warnings INTERFACE)
target_compile_options(bm_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough
  -Wno-sign-conversion)
if(BM_WERROR)
  target_compile_options(bm_warnings INTERFACE -Werror)
endif()
