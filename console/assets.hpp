#pragma once
// The spend console's files, compiled in from console/ (console/CMakeLists.txt).
#include <span>
#include <string_view>

namespace bedrock_meter::console {

struct asset {
  std::string_view path;          ///< as served: "/", "/console.js"...
  std::string_view content_type;  ///< with charset for text
  std::string_view body;
};

/// Every file of the console, `/` (index.html) first.
std::span<const asset> assets() noexcept;

/// The Content-Security-Policy every console response carries: scripts, styles and fetches from
/// the listener itself only, no inline script or style, no frames, no form posts elsewhere.
inline constexpr std::string_view content_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace bedrock_meter::console
