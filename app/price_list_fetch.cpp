// `bedrock-meter rates fetch`: the AWS Price List Query API (GetProducts) called directly, its
// pages fed to the same importer as `rates import`. A blocking HTTPS client on a private
// io_context (a command, not the request path), SigV4 with service `pricing` and the proxy's own
// credential chain, NextToken paging, and throttling answered with backoff.
#include "app/price_list_fetch.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <thread>

#include "aws/metadata_client.hpp"  // parse_url and where(): aws/'s URL helpers
#include "aws/sigv4.hpp"
#include "io/net.hpp"

namespace bedrock_meter::app {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct reply {
  unsigned status = 0;
  std::string body;
};

/// One POST on a fresh TLS connection; a transport failure is an error string.
boost::system::result<reply, std::string> post(const fetch_settings& s,
                                               const aws::detail::parsed_url& url,
                                               const std::string& body,
                                               const aws::aws_credentials& creds) {
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_default_verify_paths(ec);
  if (!s.ca_file.empty()) {
    ctx.load_verify_file(s.ca_file, ec);
    if (ec) return "cannot read --ca-file " + s.ca_file + ": " + ec.message();
  }
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  // SNI (SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to).
  if (SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(url.host.c_str())) != 1)
    return std::string("cannot set SNI");
  stream.set_verify_callback(ssl::host_name_verification(url.host));
  tcp::resolver resolver(ioc);
  const auto where = aws::detail::where(url);
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return "resolve " + where + ": " + ec.message();
  beast::get_lowest_layer(stream).expires_after(s.timeout);
  beast::get_lowest_layer(stream).connect(endpoints, ec);
  if (ec) return "connect " + where + ": " + ec.message();
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return "TLS handshake " + where + ": " + ec.message();

  aws::sigv4::header_list headers{{"host", url.authority},
                                  {"content-type", "application/x-amz-json-1.1"},
                                  {"x-amz-target", "AWSPriceListService.GetProducts"}};
  aws::sigv4::signing_options so;
  so.region = s.signing_region;
  so.service = "pricing";
  so.now = std::chrono::system_clock::now();
  aws::sigv4::sign("POST", url.path, headers, aws::sigv4::sha256_hex(body), creds.creds, so);
  http::request<http::string_body> req{http::verb::post, url.path, 11};
  for (const auto& [k, v] : headers) req.set(k, v);
  req.set(http::field::user_agent, "bedrock-meter");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) return "write " + where + ": " + ec.message();
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{64} << 20);  // a page is at most 100 products
  http::read(stream, buf, parser, ec);
  if (ec) return "read " + where + ": " + ec.message();
  stream.shutdown(ec);  // the answer is complete; a peer that skips close_notify is not an error
  return reply{parser.get().result_int(), std::move(parser.get().body())};
}

/// AWS JSON errors: {"__type": "...#ThrottlingException", "message": "..."}.
std::string error_type(std::string_view body) {
  boost::system::error_code ec;
  const auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const auto* t = v.as_object().if_contains("__type");
  if (t == nullptr || !t->is_string()) return {};
  std::string_view type = t->get_string();
  if (const auto hash = type.rfind('#'); hash != std::string_view::npos)
    type.remove_prefix(hash + 1);
  return std::string(type);
}

std::string request_body(std::string_view service, std::string_view region,
                         const std::string& next_token) {
  boost::json::object o{{"ServiceCode", service}, {"FormatVersion", "aws_v1"}, {"MaxResults", 100}};
  if (!region.empty()) {
    o["Filters"] = boost::json::array{
        boost::json::object{{"Type", "TERM_MATCH"}, {"Field", "regionCode"}, {"Value", region}}};
  }
  if (!next_token.empty()) o["NextToken"] = next_token;
  return boost::json::serialize(o);
}

}  // namespace

boost::system::result<std::vector<billing::offer_text>, std::string> fetch_price_list(
    const fetch_settings& s, const aws::aws_credentials& creds, const progress_fn& progress) {
  const auto url = aws::detail::parse_url(s.endpoint);
  if (!url || url->scheme != "https") return "--endpoint must be an https:// URL: " + s.endpoint;
  std::vector<billing::offer_text> pages;
  const std::vector<std::string> all_regions{""};
  const auto& regions = s.regions.empty() ? all_regions : s.regions;
  auto last_call = std::chrono::steady_clock::now() - s.min_interval;
  for (const std::string_view service : {"AmazonBedrock", "AmazonBedrockFoundationModels"}) {
    for (const auto& region : regions) {
      std::string token;
      for (int page = 1;; ++page) {
        const std::string body = request_body(service, region, token);
        reply r;
        for (unsigned attempt = 0;; ++attempt) {
          // The Query API allows about 10 calls a second: keep the pace, back off when told.
          std::this_thread::sleep_until(last_call + s.min_interval);
          last_call = std::chrono::steady_clock::now();
          auto got = post(s, *url, body, creds);
          if (!got) return got.error();
          r = std::move(*got);
          const std::string type = r.status == 200 ? std::string() : error_type(r.body);
          const bool retry = r.status == 429 || r.status >= 500 || type == "ThrottlingException";
          if (!retry || attempt + 1 >= s.attempts) break;
          const auto wait = s.backoff * (1U << std::min(attempt, 6U));
          if (progress) progress("throttled (" + std::to_string(r.status) + "), retrying");
          std::this_thread::sleep_for(wait);
        }
        if (r.status != 200) {
          const std::string type = error_type(r.body);
          return "GetProducts " + std::string(service) + " " + region + ": HTTP " +
                 std::to_string(r.status) + (type.empty() ? "" : " " + type) + ": " +
                 r.body.substr(0, 300);
        }
        boost::system::error_code ec;
        const auto v = boost::json::parse(r.body, ec);
        if (ec || !v.is_object()) return "GetProducts answered something that is not JSON";
        const auto* next = v.as_object().if_contains("NextToken");
        token = next != nullptr && next->is_string() ? std::string(next->get_string()) : "";
        pages.push_back({"GetProducts " + std::string(service) +
                             (region.empty() ? "" : " " + region) + " page " + std::to_string(page),
                         std::move(r.body)});
        if (progress) progress(pages.back().name);
        if (token.empty()) break;
      }
    }
  }
  return pages;
}

}  // namespace bedrock_meter::app
