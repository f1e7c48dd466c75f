// The credential error vocabulary: names for the codes, and the exception `result::value()`
// throws.
#include "aws/credentials.hpp"

#include <stdexcept>

namespace bedrock_meter::aws {

void throw_exception_from_error(const credential_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

std::string_view to_string(credential_errc e) noexcept {
  switch (e) {
    case credential_errc::not_found: return "not_found";
    case credential_errc::partial: return "partial";
    case credential_errc::profile_not_found: return "profile_not_found";
    case credential_errc::unsupported: return "unsupported";
    case credential_errc::invalid_endpoint: return "invalid_endpoint";
    case credential_errc::unreadable: return "unreadable";
    case credential_errc::http: return "http";
    case credential_errc::bad_response: return "bad_response";
    case credential_errc::disabled: return "disabled";
  }
  return "unknown";
}

}  // namespace bedrock_meter::aws
