#include "tests/simulator/sim_options.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "tests/simulator/sim_codec.hpp"

namespace bedrock_meter::simulator {

namespace {

// What parsing carries between arguments: a key pair is given as two or three flags in a row.
struct cli_state {
  options opt;
  std::string pending_key;  // an --access-key still waiting for its --secret-key
  std::string last_key;     // the last complete pair, which --session-token applies to
};

using step = boost::system::result<void, startup_error>;
using option_handler = step (*)(cli_state& s, std::string_view flag, std::string_view value);

step set_listen(cli_state& s, std::string_view, std::string_view v) {
  const auto colon = v.rfind(':');
  auto port = colon == std::string_view::npos ? std::nullopt : parse_uint(v.substr(colon + 1));
  if (!port || *port > 65535) {
    return startup_error{"--listen wants HOST:PORT, got " + std::string(v)};
  }
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  s.opt.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  s.opt.port = static_cast<unsigned short>(*port);
  return {};
}

step set_threads(cli_state& s, std::string_view, std::string_view v) {
  auto n = parse_uint(v);
  if (!n || *n == 0 || *n > 256) return startup_error{"--threads wants 1..256"};
  s.opt.threads = static_cast<unsigned>(*n);
  return {};
}

startup_error pending_key_error(const cli_state& s) {
  return startup_error{"--access-key " + s.pending_key + " has no --secret-key"};
}

step set_access_key(cli_state& s, std::string_view, std::string_view v) {
  if (!s.pending_key.empty()) return pending_key_error(s);
  s.pending_key = std::string(v);
  return {};
}

step set_secret_key(cli_state& s, std::string_view, std::string_view v) {
  if (s.pending_key.empty()) return startup_error{"--secret-key must follow --access-key"};
  s.opt.keys[s.pending_key] = aws::sigv4::issued_key{std::string(v), {}};
  s.last_key = s.pending_key;
  s.pending_key.clear();
  return {};
}

// Temporary credentials: the key pair just given then also requires this token.
step set_session_token(cli_state& s, std::string_view, std::string_view v) {
  if (s.last_key.empty() || !s.pending_key.empty()) {
    return startup_error{"--session-token must follow --access-key/--secret-key"};
  }
  s.opt.keys[s.last_key].session_token = std::string(v);
  return {};
}

template <std::string options::*Field>
step set_text(cli_state& s, std::string_view, std::string_view v) {
  s.opt.*Field = std::string(v);
  return {};
}

template <std::uint64_t options::*Field>
step set_number(cli_state& s, std::string_view flag, std::string_view v) {
  auto n = parse_uint(v);
  if (!n) return startup_error{std::string(flag) + " wants a non-negative integer"};
  s.opt.*Field = *n;
  return {};
}

// Every option that takes a value (the next argument), in the order of the usage text.
constexpr std::array<std::pair<std::string_view, option_handler>, 12> k_value_options = {{
    {"--listen", set_listen},
    {"--port-file", set_text<&options::port_file>},
    {"--threads", set_threads},
    {"--region", set_text<&options::region>},
    {"--access-key", set_access_key},
    {"--secret-key", set_secret_key},
    {"--session-token", set_session_token},
    {"--bearer-token", set_text<&options::bearer_token>},
    {"--tls-cert", set_text<&options::tls_cert>},
    {"--tls-key", set_text<&options::tls_key>},
    {"--seed", set_number<&options::seed>},
    {"--latency-ms", set_number<&options::latency_ms>},
}};

// Checks what only the whole command line shows.
boost::system::result<command_line, startup_error> finish(cli_state&& s) {
  if (!s.pending_key.empty()) return pending_key_error(s);
  if (s.opt.tls_cert.empty() != s.opt.tls_key.empty()) {
    return startup_error{"--tls-cert and --tls-key go together"};
  }
  return command_line{std::move(s.opt), false};
}

}  // namespace

void throw_exception_from_error(const startup_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

boost::system::result<command_line, startup_error> parse_args(int argc, const char* const* argv) {
  cli_state s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") return command_line{std::move(s.opt), true};
    if (a == "--no-auth") {
      s.opt.no_auth = true;
      continue;
    }
    const auto it = std::find_if(k_value_options.begin(), k_value_options.end(),
                                 [a](const auto& o) { return o.first == a; });
    if (it == k_value_options.end()) {
      return startup_error{"unknown argument " + std::string(a), true};
    }
    if (i + 1 >= argc) return startup_error{std::string(a) + " needs a value"};
    if (auto r = it->second(s, a, argv[++i]); !r) return r.error();
  }
  return finish(std::move(s));
}

void usage(std::ostream& os) {
  os << "usage: bedrock-sim --listen HOST:PORT [--port-file PATH] [--threads N] [--region R]\n"
        "                   [--access-key AKID --secret-key SECRET [--session-token T]]...\n"
        "                   [--bearer-token TOKEN]\n"
        "                   [--no-auth] [--tls-cert FILE --tls-key FILE] [--seed N]\n"
        "                   [--latency-ms N]\n";
}

}  // namespace bedrock_meter::simulator
