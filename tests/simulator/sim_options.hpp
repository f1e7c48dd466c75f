#pragma once
/// bedrock-sim's command line (docs/simulator.md, "Command line"): the options, their parser and
/// the usage text. No I/O but the usage text written to the stream it is given.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>

#include <boost/system/result.hpp>

#include "aws/sigv4.hpp"

namespace bedrock_meter::simulator {

struct options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::string port_file;
  unsigned threads = 1;
  std::string region = "us-east-1";
  std::map<std::string, aws::sigv4::issued_key, std::less<>> keys;  ///< by access key id
  std::string bearer_token;
  bool no_auth = false;
  std::string tls_cert, tls_key;
  std::uint64_t seed = 1;
  std::uint64_t latency_ms = 0;
};

/// Why bedrock-sim cannot start: printed as one `bedrock-sim: <message>` line on stderr.
struct startup_error {
  std::string message;
  bool show_usage = false;  ///< the usage text follows the line (an unknown argument)
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const startup_error& e,
                                             const boost::source_location& loc);

/// A parsed command line; `help` when --help / -h came before any error (the rest is ignored).
struct command_line {
  options opt;
  bool help = false;
};

/// Parses `argv[1..argc)`; the first bad argument is the error.
boost::system::result<command_line, startup_error> parse_args(int argc, const char* const* argv);

/// Writes the usage text.
void usage(std::ostream& os);

}  // namespace bedrock_meter::simulator
