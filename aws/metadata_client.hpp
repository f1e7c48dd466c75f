#pragma once
// Internal to aws/: the small blocking HTTP/1.1 client the container and IMDS credential sources
// use to talk to their metadata endpoints, and the URL parsing they share. Plain http only (no
// TLS client here). Beast and Asio stay in metadata_client.cpp (one translation unit pays for
// them).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.hpp"

namespace bedrock_meter::aws::detail {

/// An absolute URL, split the way a request needs it.
struct parsed_url {
  std::string scheme;  ///< lower case
  std::string host;    ///< without IPv6 brackets
  std::uint16_t port = 0;
  std::string authority;  ///< as written, for the Host header
  std::string path;       ///< path and query, at least "/"
};

/// `scheme://host[:port][/path][?query]`; the fragment is dropped, userinfo is refused, the port
/// defaults to 80 / 443 for http / https. nullopt when malformed or another scheme without a port.
std::optional<parsed_url> parse_url(std::string_view u);

/// Where a request went, for messages: scheme://authority only. Paths can carry credential ids
/// (ECS relative URIs) and are left out.
std::string where(const parsed_url& u);

enum class http_method : std::uint8_t { get, put };

struct metadata_request {
  http_method method = http_method::get;
  parsed_url url;
  std::string target;  ///< path (+query) to request
  std::vector<std::pair<std::string, std::string>> headers;
  /// For the whole exchange of one attempt: connect, request, response.
  std::chrono::milliseconds timeout{1000};
};

struct metadata_response {
  unsigned status = 0;
  std::string body;
};

/// Sends `req` on a fresh connection and reads the answer, on a private io_context: a blocking
/// call by design, made at startup and on the refresh thread only. Transport failures are retried
/// up to `attempts` times (at least once); an HTTP status is an answer and is returned, whatever
/// it is. Error: `http`, "<what>: <stage> <scheme://authority>: <reason>" for the last attempt.
/// Bodies over 64 KiB are a read error (no credentials endpoint sends that much).
credential_result<metadata_response> fetch_metadata(const metadata_request& req, unsigned attempts,
                                                    std::string_view what);

}  // namespace bedrock_meter::aws::detail
