# Sanitizer flags as an interface target so third-party code built here (none today) stays clean.
add_library(bm_sanitizers INTERFACE)
if(BM_SANITIZE)
  target_compile_options(bm_sanitizers INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=undefined)
  target_link_options(bm_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(BM_TSAN)
  target_compile_options(bm_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(bm_sanitizers INTERFACE -fsanitize=thread)
endif()
