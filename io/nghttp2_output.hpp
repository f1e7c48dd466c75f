#pragma once
// What an nghttp2 session has to send, gathered for one socket write. Shared by every HTTP/2
// writer loop: the proxy's server sessions (proxy/http2_session.cpp), its upstream client
// (proxy/http2_client.cpp) and the simulator's (tests/simulator/simulator.cpp).
#include <cstddef>
#include <cstdint>
#include <string>

#include <nghttp2/nghttp2.h>

namespace bedrock_meter::io {

/// The most one socket write carries, so a producer that keeps nghttp2 busy cannot grow a batch
/// without end (nor starve the loop's other checks).
inline constexpr std::size_t h2_write_batch = std::size_t{64} * 1024;

/// Appends to `out` what `session` has ready to send, stopping once `out` holds h2_write_batch
/// bytes. False when nghttp2 failed, which leaves the session unusable.
inline bool take_h2_output(nghttp2_session* session, std::string& out) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    if (out.size() >= h2_write_batch) return true;
  }
}

}  // namespace bedrock_meter::io
