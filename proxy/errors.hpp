#pragma once
// The proxy's error values off the request path (startup, reload). The request path answers
// failures as Bedrock-shaped errors instead (aws/bedrock_error.hpp).
#include <string>
#include <vector>

#include <boost/system/result.hpp>

namespace bedrock_meter::proxy {

/// Why the proxy could not start or take a new config (the application reports it; at startup
/// it exits non-zero, on reload the old config stays).
struct startup_error {
  std::string message;  ///< one line naming the listener, file or setting and the cause
};

/// A rate-table reload that was refused; the old table stays.
struct reload_error {
  std::vector<std::string> problems;  ///< `file:line:col: path: message` each
};

/// For `result::value()` on an error (boost::system::result finds them by ADL): throw
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const startup_error& e,
                                             const boost::source_location& loc);
[[noreturn]] void throw_exception_from_error(const reload_error& e,
                                             const boost::source_location& loc);

}  // namespace bedrock_meter::proxy
