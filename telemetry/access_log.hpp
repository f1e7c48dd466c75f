#pragma once
/// The access log: one JSON object per request, on the `access` logger. Only labels, counts and
/// ids: never a header value, a key or a body. docs/operations.md lists the fields.
#include <cstdint>
#include <string>
#include <string_view>

#include "metering/settlement.hpp"

namespace bedrock_meter::telemetry {

/// What the access log says about the connection a request came on (the settlement knows the
/// request, not the connection).
struct connection_info {
  std::uint64_t id = 0;       ///< the proxy's connection id (HTTP/2 streams share one)
  std::string_view protocol;  ///< "HTTP/1.1" or "HTTP/2"
  std::string_view remote;    ///< client address:port
};

/// The line for one settled request. `model` is the id as sent (the ledger keeps both).
std::string access_log_line(const metering::settlement& s, const connection_info& conn);

}  // namespace bedrock_meter::telemetry
