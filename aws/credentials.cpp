#include "aws/credentials.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace bedrock_meter::aws {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// Metadata answers are a few hundred bytes; anything much larger is not a credentials endpoint.
constexpr std::size_t max_metadata_body_bytes = 64 * 1024;
// IMDSv2 session token lifetime we ask for (the SDKs' value).
constexpr std::string_view imds_token_ttl_seconds = "21600";
// The background thread re-reads the clock at least this often, so a suspended laptop or a
// wall-clock jump cannot make it oversleep a refresh by more than this.
constexpr std::chrono::minutes max_refresh_sleep{1};
// Cap on the failure count used for the backoff exponent (avoids shifting past the type).
constexpr unsigned max_backoff_doublings = 20;

// A concrete executor type (STYLE.md 5): no any_io_executor anywhere in the metadata client.
using executor_type = net::io_context::executor_type;
using tcp_stream = beast::basic_stream<tcp, executor_type>;
using resolver = net::ip::basic_resolver<tcp, executor_type>;
template <class T>
using awaitable = net::awaitable<T, executor_type>;
constexpr auto use_ec = net::as_tuple(net::use_awaitable_t<executor_type>{});

// --- small string helpers ------------------------------------------------------------------------

std::string_view trim(std::string_view s) noexcept {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

env_fn effective_env(const env_fn& getenv) {
  if (getenv) return getenv;
  return [](const std::string& name) -> std::optional<std::string> {
    // Read at startup and on the refresh thread only; nothing in the proxy calls setenv.
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

// The value of `name` when set and non-empty.
std::optional<std::string> env_nonempty(const env_fn& env, const std::string& name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

credential_error make_error(credential_errc code, std::string message) {
  return credential_error{code, std::move(message)};
}

template <class T>
credential_result<T> fail(credential_errc code, std::string message) {
  return credential_result<T>(boost::system::in_place_error, make_error(code, std::move(message)));
}

template <class T>
credential_result<T> fail(credential_error e) {
  return credential_result<T>(boost::system::in_place_error, std::move(e));
}

template <class T>
credential_result<T> ok(T value) {
  return credential_result<T>(boost::system::in_place_value, std::move(value));
}

// --- INI (shared credentials / config files) -----------------------------------------------------

using ini_section = std::map<std::string, std::string>;  // keys lower-cased, like configparser
using ini_file = std::map<std::string, ini_section>;     // section names as written, trimmed

// Cuts a trailing ` # ...` / ` ; ...` comment. Only when preceded by whitespace: keys, secrets
// and tokens never contain whitespace, but a value may legitimately contain `#` or `;`.
std::string_view strip_inline_comment(std::string_view v) noexcept {
  for (std::size_t i = 1; i < v.size(); ++i) {
    if ((v[i] == '#' || v[i] == ';') && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
      return trim(v.substr(0, i));
    }
  }
  return v;
}

// Parses the AWS shared-file dialect of INI. Indented lines after a property are continuation
// lines (nested settings such as `s3 =\n  max_concurrent_requests = 10`) and are skipped, so they
// can never be mistaken for top-level keys. Later duplicates override earlier ones.
ini_file parse_ini(std::string_view text) {
  ini_file out;
  ini_section* section = nullptr;
  // Indent of the last property in this section; npos when there is none yet.
  std::size_t property_indent = std::string_view::npos;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);

    const auto indent = line.find_first_not_of(" \t");
    const std::string_view t = trim(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    if (property_indent != std::string_view::npos && indent > property_indent) {
      continue;  // continuation of the previous property's value
    }
    if (t.front() == '[') {
      const auto close = t.find(']');
      if (close == std::string_view::npos) {
        section = nullptr;  // malformed header: ignore its body rather than misfile it
      } else {
        section = &out[std::string(trim(t.substr(1, close - 1)))];
      }
      property_indent = std::string_view::npos;
      continue;
    }
    const auto delim = t.find_first_of("=:");
    if (delim == std::string_view::npos || section == nullptr) continue;
    const std::string key = lower(trim(t.substr(0, delim)));
    if (key.empty()) continue;
    (*section)[key] = std::string(strip_inline_comment(trim(t.substr(delim + 1))));
    property_indent = indent;
  }
  return out;
}

// A file named by the user. nullopt + no error: absent. Error: present but unreadable.
struct file_read {
  std::optional<std::string> text;
  std::optional<credential_error> error;
};

file_read read_file(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {std::nullopt, make_error(credential_errc::unreadable,
                                     std::string(what) + ": cannot read " + path)};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return {std::nullopt, make_error(credential_errc::unreadable,
                                     std::string(what) + ": error reading " + path)};
  }
  return {ss.str(), std::nullopt};
}

std::string expand_home(std::string path, const env_fn& env) {
  if (path == "~" || path.starts_with("~/")) {
    if (auto home = env_nonempty(env, "HOME")) return *home + path.substr(1);
  }
  return path;
}

// Keys whose presence means "this profile gets credentials some way we do not implement".
constexpr std::array<std::string_view, 8> unsupported_profile_keys = {
    "credential_process", "sso_session",           "sso_start_url",    "sso_account_id",
    "role_arn",           "web_identity_token_file", "credential_source", "login_session"};

std::string_view get(const ini_section& s, std::string_view key) {
  const auto it = s.find(std::string(key));
  return it == s.end() ? std::string_view{} : trim(it->second);
}

// --- URLs and the metadata HTTP client -----------------------------------------------------------

struct parsed_url {
  std::string scheme;  // lower case
  std::string host;    // without IPv6 brackets
  std::uint16_t port = 0;
  std::string authority;  // as written, for the Host header
  std::string path;       // path and query, at least "/"
};

std::optional<parsed_url> parse_url(std::string_view u) {
  const auto sep = u.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  parsed_url out;
  out.scheme = lower(u.substr(0, sep));
  std::string_view rest = u.substr(sep + 3);
  const auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (const auto hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  out.path = path.empty() ? "/" : (path.front() == '?' ? "/" + std::string(path) : std::string(path));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  out.authority = std::string(authority);

  std::string_view host;
  std::string_view port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) return std::nullopt;
  out.host = std::string(host);
  if (port.empty()) {
    if (out.scheme == "http") out.port = 80;
    else if (out.scheme == "https") out.port = 443;
    else return std::nullopt;
  } else {
    unsigned value = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

// Where a request went, for messages: scheme://authority only. Paths can carry credential ids
// (ECS relative URIs) and are left out.
std::string where(const parsed_url& u) { return u.scheme + "://" + u.authority; }

struct http_exchange {
  http::verb method = http::verb::get;
  parsed_url url;
  std::string target;  // path (+query) to request
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{1000};
};

struct http_outcome {
  beast::error_code ec;
  std::string_view stage;  // "connect", "write", "read" (static strings)
  unsigned status = 0;
  std::string body;
};

// One HTTP/1.1 request on a fresh connection. The whole exchange shares one deadline: tcp_stream
// keeps the expiry across operations until it is changed. The exchange is passed by value because
// the coroutine outlives the caller's expression (STYLE.md 8).
awaitable<http_outcome> run_exchange(http_exchange x) {
  http_outcome out;
  const auto ex = co_await net::this_coro::executor;
  tcp_stream stream(ex);
  stream.expires_after(x.timeout);

  boost::system::error_code addr_ec;
  const auto addr = net::ip::make_address(x.url.host, addr_ec);
  if (!addr_ec) {
    auto [ec] = co_await stream.async_connect(tcp::endpoint(addr, x.url.port), use_ec);
    if (ec) {
      out.ec = ec;
      out.stage = "connect";
      co_return out;
    }
  } else {
    // Only names the user configured reach here (e.g. `localhost`); the resolver is not covered
    // by the stream's deadline, but such names resolve locally.
    resolver res(ex);
    auto [rec, results] =
        co_await res.async_resolve(x.url.host, std::to_string(x.url.port), use_ec);
    if (rec) {
      out.ec = rec;
      out.stage = "resolve";
      co_return out;
    }
    auto [ec, ep] = co_await stream.async_connect(results, use_ec);
    if (ec) {
      out.ec = ec;
      out.stage = "connect";
      co_return out;
    }
  }

  http::request<http::empty_body> req{x.method, x.target, 11};
  req.set(http::field::host, x.url.authority);
  req.set(http::field::user_agent, "bedrock-meter");
  req.set(http::field::accept, "*/*");
  for (const auto& [name, value] : x.headers) req.set(name, value);
  if (x.method == http::verb::put) req.content_length(0);  // IMDS wants a length on PUT
  if (auto [ec, n] = co_await http::async_write(stream, req, use_ec); ec) {
    out.ec = ec;
    out.stage = "write";
    co_return out;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_metadata_body_bytes);
  if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_ec); ec) {
    out.ec = ec;
    out.stage = "read";
    co_return out;
  }
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return out;
}

// Runs one exchange to completion on a private io_context (this is a blocking call by design:
// startup and the refresh thread only). Retries transport failures up to `attempts` times; an
// HTTP status is an answer, not retried.
credential_result<http_outcome> http_fetch(const http_exchange& x, unsigned attempts,
                                           std::string_view what) {
  std::string last_error;
  for (unsigned i = 0; i < std::max(attempts, 1u); ++i) {
    net::io_context ioc(1);
    std::optional<http_outcome> result;
    bool threw = false;
    net::co_spawn(ioc, run_exchange(x), [&](std::exception_ptr ep, http_outcome o) {
      if (ep) threw = true;
      else result = std::move(o);
    });
    ioc.run();
    if (threw || !result) {
      last_error = "internal error";
      continue;
    }
    if (!result->ec) return ok(std::move(*result));
    last_error = std::string(result->stage) + " " + where(x.url) + ": " +
                 (result->ec == beast::error::timeout ? std::string("timed out")
                                                      : result->ec.message());
  }
  return fail<http_outcome>(credential_errc::http, std::string(what) + ": " + last_error);
}

// --- the credentials JSON of the container endpoint and IMDS -------------------------------------

std::optional<std::string_view> json_string(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  const auto& s = v->get_string();
  return std::string_view(s.data(), s.size());
}

// A short, printable excerpt of a non-secret field for error messages.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

credential_result<aws_credentials> parse_credentials_json(std::string_view body, bool check_code,
                                                          std::string source) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return fail<aws_credentials>(credential_errc::bad_response,
                                 source + ": credentials response is not a JSON object");
  }
  const auto& o = v.get_object();
  if (check_code) {
    if (auto code = json_string(o, "Code"); code && *code != "Success") {
      return fail<aws_credentials>(credential_errc::bad_response,
                                   source + ": credentials response has Code=" + printable(*code));
    }
  }
  const auto id = json_string(o, "AccessKeyId");
  const auto secret = json_string(o, "SecretAccessKey");
  if (!id || id->empty() || !secret || secret->empty()) {
    return fail<aws_credentials>(
        credential_errc::bad_response,
        source + ": credentials response lacks AccessKeyId or SecretAccessKey");
  }
  aws_credentials c;
  c.creds.access_key_id = std::string(*id);
  c.creds.secret_access_key = std::string(*secret);
  if (auto token = json_string(o, "Token")) c.creds.session_token = std::string(*token);
  if (const auto* exp = o.if_contains("Expiration"); exp != nullptr && !exp->is_null()) {
    std::optional<clock_time> t;
    if (exp->is_string()) {
      const auto& s = exp->get_string();
      t = parse_iso8601(std::string_view(s.data(), s.size()));
    }
    if (!t) {
      return fail<aws_credentials>(credential_errc::bad_response,
                                   source + ": credentials response has an unparseable Expiration");
    }
    c.expiration = t;
  }
  c.source = std::move(source);
  return ok(std::move(c));
}

bool is_allowed_full_uri_host(const std::string& host) {
  if (iequals(host, "localhost")) return true;
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(host, ec);
  if (ec) return false;
  if (addr.is_loopback()) return true;
  // The ECS (IPv4) and EKS Pod Identity (IPv4 and IPv6) agents.
  for (const char* allowed : {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}) {
    if (addr == net::ip::make_address(allowed, ec)) return true;
  }
  return false;
}

std::optional<unsigned> parse_unsigned(std::string_view s) {
  s = trim(s);
  unsigned v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

// --- public free functions -----------------------------------------------------------------------

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

std::optional<clock_time> parse_iso8601(std::string_view s) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm|+hhmm|-hhmm)
  const auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  const auto year = digits(0, 4);
  const auto month = digits(5, 2);
  const auto day = digits(8, 2);
  const auto hour = digits(11, 2);
  const auto minute = digits(14, 2);
  const auto second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (*hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*year},
                                        std::chrono::month{static_cast<unsigned>(*month)},
                                        std::chrono::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok()) return std::nullopt;

  std::size_t pos = 19;
  std::chrono::nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    long long ns = 0;
    int kept = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (kept < 9) {
        ns = ns * 10 + (s[pos] - '0');
        ++kept;
      }
      ++pos;
    }
    if (pos == start) return std::nullopt;
    for (; kept < 9; ++kept) ns *= 10;
    frac = std::chrono::nanoseconds{ns};
  }
  if (pos >= s.size()) return std::nullopt;  // a zone is required
  std::chrono::minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const int sign = s[pos] == '-' ? -1 : 1;
    const auto oh = digits(pos + 1, 2);
    if (!oh) return std::nullopt;
    std::size_t mpos = pos + 3;
    if (mpos < s.size() && s[mpos] == ':') ++mpos;
    const auto om = digits(mpos, 2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset = std::chrono::minutes{sign * (*oh * 60 + *om)};
    pos = mpos + 2;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;

  const auto tp = std::chrono::sys_days{ymd} + std::chrono::hours{*hour} +
                  std::chrono::minutes{*minute} + std::chrono::seconds{*second} + frac - offset;
  return std::chrono::time_point_cast<clock_time::duration>(tp);
}

credential_result<aws_credentials> from_environment(const fetch_options& opt) {
  const env_fn env = effective_env(opt.getenv);
  const auto id = env_nonempty(env, "AWS_ACCESS_KEY_ID");
  const auto secret = env_nonempty(env, "AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) {
    return fail<aws_credentials>(credential_errc::not_found, "AWS_ACCESS_KEY_ID is not set");
  }
  if (!id || !secret) {
    return fail<aws_credentials>(credential_errc::partial,
                                 id ? "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
                                    : "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  }
  aws_credentials c;
  c.creds.access_key_id = *id;
  c.creds.secret_access_key = *secret;
  if (auto token = env_nonempty(env, "AWS_SESSION_TOKEN")) {
    c.creds.session_token = *token;
  } else if (auto legacy = env_nonempty(env, "AWS_SECURITY_TOKEN")) {
    c.creds.session_token = *legacy;
  }
  if (auto exp = env_nonempty(env, "AWS_CREDENTIAL_EXPIRATION")) {
    c.expiration = parse_iso8601(trim(*exp));
    if (!c.expiration) {
      return fail<aws_credentials>(credential_errc::bad_response,
                                   "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 timestamp");
    }
  }
  c.source = "environment";
  return ok(std::move(c));
}

credential_result<aws_credentials> from_profile(std::string_view profile,
                                                const fetch_options& opt) {
  const env_fn env = effective_env(opt.getenv);
  std::string name(profile);
  bool named = !name.empty();
  if (!named) {
    if (auto p = env_nonempty(env, "AWS_PROFILE")) {
      name = *p;
      named = true;
    } else {
      name = "default";
    }
  }
  const std::string credentials_path = expand_home(
      env_nonempty(env, "AWS_SHARED_CREDENTIALS_FILE").value_or("~/.aws/credentials"), env);
  const std::string config_path =
      expand_home(env_nonempty(env, "AWS_CONFIG_FILE").value_or("~/.aws/config"), env);

  const std::string label = "profile '" + name + "'";
  auto credentials_text = read_file(credentials_path, label);
  if (credentials_text.error) return fail<aws_credentials>(*credentials_text.error);
  auto config_text = read_file(config_path, label);
  if (config_text.error) return fail<aws_credentials>(*config_text.error);

  // The credentials file names sections `[name]`; the config file `[profile name]`, except that
  // the default profile may be `[default]` there too.
  std::optional<ini_section> in_credentials;
  if (credentials_text.text) {
    auto ini = parse_ini(*credentials_text.text);
    if (auto it = ini.find(name); it != ini.end()) in_credentials = std::move(it->second);
  }
  std::optional<ini_section> in_config;
  if (config_text.text) {
    for (auto& [section, values] : parse_ini(*config_text.text)) {
      bool match = name == "default" && section == "default";
      if (!match && section.starts_with("profile")) {
        std::istringstream words(section);
        std::string first;
        std::string second;
        std::string extra;
        words >> first >> second;
        match = first == "profile" && second == name && !(words >> extra);
      }
      if (!match) continue;
      if (!in_config) in_config.emplace();
      for (auto& [k, v] : values) (*in_config)[k] = std::move(v);
    }
  }

  if (!in_credentials && !in_config) {
    const std::string msg = label + " not found in " + credentials_path + " or " + config_path;
    return fail<aws_credentials>(
        named ? credential_errc::profile_not_found : credential_errc::not_found, msg);
  }

  // The credentials file first, then the config file (botocore's SharedCredentialProvider, then
  // ConfigProvider).
  const std::pair<const std::optional<ini_section>*, const std::string*> sources[] = {
      {&in_credentials, &credentials_path}, {&in_config, &config_path}};
  for (const auto& [section, path] : sources) {
    if (!*section) continue;
    const auto id = get(**section, "aws_access_key_id");
    const auto secret = get(**section, "aws_secret_access_key");
    if (id.empty() && secret.empty()) continue;
    if (id.empty() || secret.empty()) {
      return fail<aws_credentials>(
          credential_errc::partial,
          label + " in " + *path + " has " +
              (id.empty() ? "aws_secret_access_key but no aws_access_key_id"
                          : "aws_access_key_id but no aws_secret_access_key"));
    }
    aws_credentials c;
    c.creds.access_key_id = std::string(id);
    c.creds.secret_access_key = std::string(secret);
    auto token = get(**section, "aws_session_token");
    if (token.empty()) token = get(**section, "aws_security_token");
    c.creds.session_token = std::string(token);
    c.source = "profile:" + name;
    return ok(std::move(c));
  }
  for (const auto& [section, path] : sources) {
    if (!*section) continue;
    for (const auto key : unsupported_profile_keys) {
      if ((*section)->contains(std::string(key))) {
        return fail<aws_credentials>(
            credential_errc::unsupported,
            label + " in " + *path + " uses " + std::string(key) +
                ", which bedrock-meter does not support; give the profile static keys "
                "(aws_access_key_id / aws_secret_access_key) or use environment, container or "
                "instance credentials");
      }
    }
  }
  return fail<aws_credentials>(credential_errc::not_found,
                               label + " has no aws_access_key_id / aws_secret_access_key");
}

credential_result<aws_credentials> from_container(const fetch_options& opt) {
  const env_fn env = effective_env(opt.getenv);
  std::string uri;
  if (auto rel = env_nonempty(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    uri = opt.container_base_uri + *rel;
  } else if (auto full = env_nonempty(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    uri = *full;
  } else {
    return fail<aws_credentials>(
        credential_errc::not_found,
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
  }
  const auto url = parse_url(uri);
  if (!url) {
    return fail<aws_credentials>(credential_errc::invalid_endpoint,
                                 "container: the credentials URI is not a valid http URL");
  }
  if (url->scheme == "https") {
    return fail<aws_credentials>(
        credential_errc::unsupported,
        "container: https credentials endpoints are not supported (use an http endpoint on "
        "loopback, 169.254.170.2 or 169.254.170.23)");
  }
  if (url->scheme != "http") {
    return fail<aws_credentials>(credential_errc::invalid_endpoint,
                                 "container: the credentials URI must be http://");
  }
  // The relative form always targets the configured base (the ECS agent); the full form is
  // restricted as the SDKs restrict it, so a poisoned env var cannot send the token elsewhere.
  if (!env_nonempty(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") &&
      !is_allowed_full_uri_host(url->host)) {
    return fail<aws_credentials>(
        credential_errc::invalid_endpoint,
        "container: AWS_CONTAINER_CREDENTIALS_FULL_URI host " + printable(url->host) +
            " is not loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23");
  }

  http_exchange x;
  x.url = *url;
  x.target = url->path;
  x.timeout = opt.container_timeout;
  std::optional<std::string> token;
  if (auto file = env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    // Re-read on every fetch: EKS rotates the projected token file.
    auto text = read_file(*file, "container");
    if (text.error) return fail<aws_credentials>(*text.error);
    if (!text.text) {
      return fail<aws_credentials>(
          credential_errc::unreadable,
          "container: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *file + " does not exist");
    }
    token = std::string(trim(*text.text));
  } else if (auto inline_token = env_nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    token = *inline_token;
  }
  if (token) {
    if (token->find_first_of("\r\n") != std::string::npos) {
      return fail<aws_credentials>(credential_errc::bad_response,
                                   "container: the authorization token contains a line break");
    }
    x.headers.emplace_back("Authorization", std::move(*token));
  }

  auto reply = http_fetch(x, opt.container_attempts, "container");
  if (!reply) return fail<aws_credentials>(reply.error());
  if (reply->status != 200) {
    return fail<aws_credentials>(credential_errc::http,
                                 "container: " + where(*url) + " answered HTTP " +
                                     std::to_string(reply->status));
  }
  return parse_credentials_json(reply->body, false, "container");
}

credential_result<aws_credentials> from_imds(const fetch_options& opt) {
  const env_fn env = effective_env(opt.getenv);
  if (auto disabled = env(std::string("AWS_EC2_METADATA_DISABLED"));
      disabled && iequals(trim(*disabled), "true")) {
    return fail<aws_credentials>(credential_errc::disabled,
                                 "imds: disabled by AWS_EC2_METADATA_DISABLED");
  }
  std::string endpoint = "http://169.254.169.254";
  if (auto e = env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
    endpoint = *e;
  } else if (auto mode = env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
             mode && iequals(*mode, "ipv6")) {
    endpoint = "http://[fd00:ec2::254]";
  }
  const auto url = parse_url(endpoint);
  if (!url || url->scheme != "http") {
    return fail<aws_credentials>(credential_errc::invalid_endpoint,
                                 "imds: AWS_EC2_METADATA_SERVICE_ENDPOINT must be an http:// URL");
  }
  std::string base = url->path;
  while (!base.empty() && base.back() == '/') base.pop_back();

  auto timeout = opt.imds_timeout;
  auto attempts = opt.imds_attempts;
  if (auto t = env_nonempty(env, "AWS_METADATA_SERVICE_TIMEOUT")) {
    if (auto v = parse_unsigned(*t); v && *v > 0) timeout = std::chrono::seconds(*v);
  }
  if (auto n = env_nonempty(env, "AWS_METADATA_SERVICE_NUM_ATTEMPTS")) {
    if (auto v = parse_unsigned(*n); v && *v > 0) attempts = *v;
  }

  http_exchange x;
  x.url = *url;
  x.timeout = timeout;

  x.method = http::verb::put;
  x.target = base + "/latest/api/token";
  x.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", std::string(imds_token_ttl_seconds)}};
  auto token = http_fetch(x, attempts, "imds");
  if (!token) return fail<aws_credentials>(token.error());
  if (token->status != 200 || trim(token->body).empty()) {
    return fail<aws_credentials>(credential_errc::http,
                                 "imds: session token request answered HTTP " +
                                     std::to_string(token->status));
  }

  x.method = http::verb::get;
  x.target = base + "/latest/meta-data/iam/security-credentials/";
  x.headers = {{"X-aws-ec2-metadata-token", std::string(trim(token->body))}};
  auto roles = http_fetch(x, attempts, "imds");
  if (!roles) return fail<aws_credentials>(roles.error());
  if (roles->status == 404) {
    return fail<aws_credentials>(credential_errc::not_found,
                                 "imds: no IAM role is attached to this instance");
  }
  if (roles->status != 200) {
    return fail<aws_credentials>(credential_errc::http,
                                 "imds: role name request answered HTTP " +
                                     std::to_string(roles->status));
  }
  std::string_view role = trim(roles->body);
  role = trim(role.substr(0, role.find('\n')));
  const bool role_ok = !role.empty() && std::all_of(role.begin(), role.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("+=,.@_-").find(c) != std::string_view::npos;
  });
  if (!role_ok) {
    return fail<aws_credentials>(credential_errc::bad_response,
                                 "imds: the role name is empty or not a valid IAM role name");
  }

  x.target = base + "/latest/meta-data/iam/security-credentials/" + std::string(role);
  auto creds = http_fetch(x, attempts, "imds");
  if (!creds) return fail<aws_credentials>(creds.error());
  if (creds->status != 200) {
    return fail<aws_credentials>(credential_errc::http,
                                 "imds: credentials request for role " + std::string(role) +
                                     " answered HTTP " + std::to_string(creds->status));
  }
  return parse_credentials_json(creds->body, true, "imds");
}

credential_result<resolved_source> resolve(const config::upstream_credentials& cfg,
                                           const fetch_options& opt) {
  const auto use = [&](auto fn) -> credential_result<resolved_source> {
    // The refetch owns copies: it runs on the refresh thread long after `opt` is gone.
    fetch_fn refetch = [fn, opt]() { return fn(opt); };
    auto first = fn(opt);
    if (!first) return fail<resolved_source>(first.error());
    return ok(resolved_source{std::move(*first), std::move(refetch)});
  };
  const std::string profile = cfg.profile;
  const auto env_source = [](const fetch_options& o) { return from_environment(o); };
  const auto profile_source = [profile](const fetch_options& o) { return from_profile(profile, o); };
  const auto container_source = [](const fetch_options& o) { return from_container(o); };
  const auto imds_source = [](const fetch_options& o) { return from_imds(o); };

  switch (cfg.source) {
    case config::credential_source::environment: return use(env_source);
    case config::credential_source::profile: return use(profile_source);
    case config::credential_source::container: return use(container_source);
    case config::credential_source::imds: return use(imds_source);
    case config::credential_source::bearer:
      return fail<resolved_source>(
          credential_errc::unsupported,
          "source 'bearer' uses a Bedrock API key, not AWS credentials (see bearer_token)");
    case config::credential_source::default_chain: break;
  }

  std::string tried;
  const auto skip = [&tried](const credential_error& e) {
    tried += tried.empty() ? "" : "; ";
    tried += e.message;
  };
  // An explicit profile in our config negates the environment, as Session(profile_name=...)
  // does in botocore: the operator asked for that profile.
  if (cfg.profile.empty()) {
    auto r = use(env_source);
    if (r || r.error().code != credential_errc::not_found) return r;
    skip(r.error());
  }
  {
    auto r = use(profile_source);
    if (r || r.error().code != credential_errc::not_found) return r;
    skip(r.error());
  }
  {
    auto r = use(container_source);
    if (r || r.error().code != credential_errc::not_found) return r;
    skip(r.error());
  }
  // IMDS is the last resort and, as in botocore, any failure there just means "not on EC2".
  auto r = use(imds_source);
  if (r) return r;
  skip(r.error());
  return fail<resolved_source>(credential_errc::not_found,
                               "no AWS credentials found for Bedrock (" + tried + ")");
}

credential_result<std::string> bearer_token(const config::upstream_credentials& cfg,
                                            const env_fn& getenv) {
  const env_fn env = effective_env(getenv);
  if (cfg.bearer_token_env.empty()) {
    return fail<std::string>(credential_errc::not_found, "bearer_token_env is empty");
  }
  auto v = env_nonempty(env, cfg.bearer_token_env);
  if (!v) {
    return fail<std::string>(credential_errc::not_found,
                             cfg.bearer_token_env + " is not set or empty");
  }
  return ok(std::string(trim(*v)));
}

// --- credential_provider -------------------------------------------------------------------------

credential_result<std::unique_ptr<credential_provider>> credential_provider::create(
    const config::upstream_credentials& cfg, provider_options opt) {
  opt.policy.refresh_before = cfg.refresh_before;
  auto resolved = resolve(cfg, opt.fetch);
  if (!resolved) return fail<std::unique_ptr<credential_provider>>(resolved.error());
  return ok(std::unique_ptr<credential_provider>(new credential_provider(
      std::move(resolved->refetch), std::move(opt), std::move(resolved->first))));
}

credential_result<std::unique_ptr<credential_provider>> credential_provider::create(
    fetch_fn fetch, provider_options opt) {
  auto first = fetch();
  if (!first) return fail<std::unique_ptr<credential_provider>>(first.error());
  return ok(std::unique_ptr<credential_provider>(
      new credential_provider(std::move(fetch), std::move(opt), std::move(*first))));
}

credential_provider::credential_provider(fetch_fn fetch, provider_options opt,
                                         aws_credentials first)
    : fetch_(std::move(fetch)), opt_(std::move(opt)) {
  next_attempt_ = schedule_after_success(first, now());
  current_.store(std::make_shared<const aws_credentials>(std::move(first)),
                 std::memory_order_release);
  // Started last: everything the thread reads is initialized.
  if (opt_.background_refresh) thread_ = std::thread([this] { run(); });
}

credential_provider::~credential_provider() { stop(); }

std::shared_ptr<const aws_credentials> credential_provider::current() const noexcept {
  return current_.load(std::memory_order_acquire);
}

clock_time credential_provider::now() const {
  return opt_.now ? opt_.now() : std::chrono::system_clock::now();
}

std::optional<clock_time> credential_provider::schedule_after_success(const aws_credentials& c,
                                                                      clock_time t) const {
  if (!c.expiration) return std::nullopt;  // long-term keys: nothing to refresh
  const auto due = *c.expiration - opt_.policy.refresh_before;
  return std::max<clock_time>(due, t + opt_.policy.min_interval);
}

refresh_result credential_provider::refresh_if_due() { return attempt(false); }
refresh_result credential_provider::refresh_now() { return attempt(true); }

refresh_result credential_provider::attempt(bool force) {
  const std::lock_guard fetch_lock(fetch_mu_);
  if (!force) {
    const std::lock_guard lock(state_mu_);
    if (!next_attempt_ || now() < *next_attempt_) return refresh_result::not_due;
  }

  // The fetch runs without state_mu_: status() and the thread's wait stay responsive, and
  // current() never waits on anything.
  auto fetched = fetch_();

  refresh_event ev;
  {
    const std::lock_guard lock(state_mu_);
    const auto t = now();
    if (fetched) {
      auto snap = std::make_shared<const aws_credentials>(std::move(*fetched));
      next_attempt_ = schedule_after_success(*snap, t);
      ev.source = snap->source;
      ev.expiration = snap->expiration;
      current_.store(std::move(snap), std::memory_order_release);
      consecutive_failures_ = 0;
      ++refreshes_;
      last_error_.reset();
      ev.result = refresh_result::refreshed;
    } else {
      ++consecutive_failures_;
      ++refresh_failures_;
      auto delay = opt_.policy.retry_initial;
      for (unsigned i = 1; i < std::min(consecutive_failures_, max_backoff_doublings) &&
                           delay < opt_.policy.retry_max;
           ++i) {
        delay *= 2;
      }
      delay = std::min(delay, opt_.policy.retry_max);
      next_attempt_ = t + delay;
      last_error_ = fetched.error();
      const auto old = current_.load(std::memory_order_acquire);
      ev.source = old->source;
      ev.expiration = old->expiration;
      ev.error = fetched.error();
      ev.result = refresh_result::failed;
    }
    ev.next_attempt = next_attempt_;
    ev.consecutive_failures = consecutive_failures_;
  }
  cv_.notify_all();  // the thread recomputes its sleep from the new schedule
  if (opt_.on_refresh) opt_.on_refresh(ev);
  return ev.result;
}

void credential_provider::wake() {
  {
    const std::lock_guard lock(state_mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void credential_provider::stop() {
  {
    const std::lock_guard lock(state_mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void credential_provider::run() {
  std::unique_lock lock(state_mu_);
  const auto woken = [this] { return stopping_ || wake_; };
  while (!stopping_) {
    wake_ = false;
    if (!next_attempt_) {
      cv_.wait(lock, woken);
      continue;
    }
    const auto t = now();
    if (t >= *next_attempt_) {
      lock.unlock();
      attempt(false);
      lock.lock();
      continue;
    }
    // Sleep on the steady clock for the wall-clock distance, at most max_refresh_sleep; waking
    // early is harmless (the loop re-reads the clock).
    const auto sleep = std::min<std::chrono::milliseconds>(
        std::chrono::ceil<std::chrono::milliseconds>(*next_attempt_ - t), max_refresh_sleep);
    cv_.wait_for(lock, sleep, woken);
  }
}

provider_status credential_provider::status() const {
  provider_status s;
  const auto snap = current();
  s.source = snap->source;
  s.expiration = snap->expiration;
  const std::lock_guard lock(state_mu_);
  s.next_attempt = next_attempt_;
  s.consecutive_failures = consecutive_failures_;
  s.refreshes = refreshes_;
  s.refresh_failures = refresh_failures_;
  s.last_error = last_error_;
  return s;
}

}  // namespace bedrock_meter::aws
