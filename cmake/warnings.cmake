# One warnings interface target, linked to our own targets only.
add_library(bm_warnings INTERFACE)
target_compile_options(bm_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough
  -Wno-sign-conversion
  # GCC 12 misreports Asio's coroutine frame operator new/delete pair as mismatched once
  # -fsanitize=address inlines them (a false positive: both are awaitable_frame_base's own).
  -Wno-mismatched-new-delete)
if(BM_WERROR)
  target_compile_options(bm_warnings INTERFACE -Werror)
endif()
