// SigV4 against AWS's own test suites (aws-c-auth v4 and the legacy botocore suite), the Bedrock
// signing vectors (botocore-verified), and every verify() outcome.
#include "aws/sigv4.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace sigv4 = bedrock_meter::aws::sigv4;
using namespace std::chrono_literals;

const fs::path suite_root = fs::path(BM_TEST_DATA_DIR) / "bedrock" / "sigv4-test-suite";
const fs::path aws_c_auth_root = suite_root / "aws-c-auth-aws-signing-test-suite" / "v4";
const fs::path legacy_root = suite_root / "legacy-aws4_testsuite-from-botocore";
const fs::path bedrock_vectors =
    fs::path(BM_TEST_DATA_DIR) / "bedrock" / "sigv4-bedrock-vectors.json";

constexpr std::string_view empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim_trailing_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The suites' request files: "METHOD target HTTP/1.1", header lines "Name:value" (continuation
// lines start with whitespace and are kept as obsolete line folding), a blank line, the body.
// The target may contain spaces (get-space), so it runs from the first to the last space.
struct http_request {
  std::string method;
  std::string target;
  sigv4::header_list headers;
  std::string body;
};

http_request parse_request(std::string_view text) {
  http_request r;
  std::size_t pos = 0;
  const auto next_line = [&](std::string_view& line) {
    if (pos > text.size()) return false;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    return true;
  };
  std::string_view line;
  next_line(line);
  const std::size_t first = line.find(' ');
  const std::size_t last = line.rfind(' ');
  r.method = std::string(line.substr(0, first));
  r.target = std::string(line.substr(first + 1, last - first - 1));
  while (next_line(line)) {
    if (line.empty()) {
      if (pos < text.size()) r.body = std::string(text.substr(pos));
      break;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !r.headers.empty()) {
      r.headers.back().second.append("\n").append(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  return r;
}

std::string test_name(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

std::chrono::system_clock::time_point parse_iso8601(std::string_view s) {
  // "2015-08-30T12:36:00Z"
  const auto num = [&](std::size_t at, std::size_t n) {
    return std::stoi(std::string(s.substr(at, n)));
  };
  const std::chrono::year_month_day ymd{std::chrono::year{num(0, 4)},
                                        std::chrono::month{static_cast<unsigned>(num(5, 2))},
                                        std::chrono::day{static_cast<unsigned>(num(8, 2))}};
  return std::chrono::sys_days{ymd} + std::chrono::hours{num(11, 2)} +
         std::chrono::minutes{num(14, 2)} + std::chrono::seconds{num(17, 2)};
}

std::string signature_from_authorization(std::string_view auth) {
  const std::size_t at = auth.find("Signature=");
  return at == std::string_view::npos ? std::string() : std::string(auth.substr(at + 10, 64));
}

// ---------------------------------------------------------------------------------------------
// Primitives

TEST(SigV4Primitives, Sha256KnownAnswers) {
  EXPECT_EQ(sigv4::sha256_hex(""), empty_sha256);
  EXPECT_EQ(sigv4::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

std::string hex(const std::array<unsigned char, 32>& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : d) {
    out.push_back(digits[c >> 4U]);
    out.push_back(digits[c & 0x0fU]);
  }
  return out;
}

TEST(SigV4Primitives, HmacRfc4231) {
  // Test case 2 (short key) and test case 6 (key longer than the block size, hashed first).
  EXPECT_EQ(hex(sigv4::hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hex(sigv4::hmac_sha256(std::string(131, '\xaa'),
                                   "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // Exactly one block long: used as is, not hashed.
  EXPECT_EQ(hex(sigv4::hmac_sha256(std::string(64, 'k'), "data")),
            hex(sigv4::hmac_sha256(std::string(64, 'k'), "data")));
  EXPECT_NE(hex(sigv4::hmac_sha256(std::string(64, 'k'), "data")),
            hex(sigv4::hmac_sha256(std::string(65, 'k'), "data")));
}

TEST(SigV4Primitives, AmzDate) {
  EXPECT_EQ(sigv4::amz_date(parse_iso8601("2015-08-30T12:36:00Z")), "20150830T123600Z");
  EXPECT_EQ(sigv4::amz_date(parse_iso8601("2025-01-01T00:00:00Z") + 999ms), "20250101T000000Z");
  EXPECT_EQ(sigv4::amz_date(parse_iso8601("1999-12-31T23:59:59Z")), "19991231T235959Z");
}

TEST(SigV4Primitives, ConstantTimeEqual) {
  EXPECT_TRUE(sigv4::constant_time_equal("", ""));
  EXPECT_TRUE(sigv4::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(sigv4::constant_time_equal("abc", "abd"));
  EXPECT_FALSE(sigv4::constant_time_equal("abc", "abcd"));
}

// ---------------------------------------------------------------------------------------------
// aws-c-auth v4 suite: header signing, plus the presigned-URL (query) variants. We do not
// generate presigned URLs, but the canonicalization they exercise (encoded query parameters,
// `%2F`/`%3B` in values) is the same code, so each query variant is checked by feeding the
// suite's own presigned target (minus X-Amz-Signature) through compute().

std::vector<std::string> list_cases(const fs::path& root, std::string_view marker_ext) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const fs::path& p = it->path();
    if (marker_ext == "context.json" ? p.filename() == "context.json"
                                     : p.extension() == marker_ext) {
      out.push_back(fs::relative(p.parent_path(), root).generic_string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct aws_c_auth_case {
  std::string dir;
  json::object context;
  http_request request;
  sigv4::credentials creds;
  sigv4::signing_options opt;
  std::string amz_date;
  bool omit_token = false;
  bool sign_body = false;
};

aws_c_auth_case load_aws_c_auth(const std::string& dir) {
  aws_c_auth_case c;
  c.dir = dir;
  const fs::path base = aws_c_auth_root / dir;
  c.context = json::parse(read_file(base / "context.json")).as_object();
  c.request = parse_request(read_file(base / "request.txt"));
  const json::object& cr = c.context.at("credentials").as_object();
  c.creds.access_key_id = json::value_to<std::string>(cr.at("access_key_id"));
  c.creds.secret_access_key = json::value_to<std::string>(cr.at("secret_access_key"));
  if (const auto* t = cr.if_contains("token"))
    c.creds.session_token = json::value_to<std::string>(*t);
  c.opt.region = json::value_to<std::string>(c.context.at("region"));
  c.opt.service = json::value_to<std::string>(c.context.at("service"));
  c.opt.now = parse_iso8601(c.context.at("timestamp").as_string());
  c.opt.normalize_path = c.context.at("normalize").as_bool();
  if (const auto* u = c.context.if_contains("uri_encode")) c.opt.double_encode_path = u->as_bool();
  if (const auto* o = c.context.if_contains("omit_session_token")) c.omit_token = o->as_bool();
  c.sign_body = c.context.at("sign_body").as_bool();
  c.amz_date = sigv4::amz_date(c.opt.now);
  return c;
}

class SigV4AwsCAuthSuite : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4AwsCAuthSuite, HeaderSigning) {
  const aws_c_auth_case c = load_aws_c_auth(GetParam());
  const fs::path base = aws_c_auth_root / c.dir;
  const std::string payload = sigv4::sha256_hex(c.request.body);

  // What aws-c-auth adds before signing: the date, the token (unless the case adds it after
  // signing), and x-amz-content-sha256 when the body is signed.
  sigv4::header_list headers = c.request.headers;
  headers.emplace_back("X-Amz-Date", c.amz_date);
  if (!c.creds.session_token.empty() && !c.omit_token) {
    headers.emplace_back("X-Amz-Security-Token", c.creds.session_token);
  }
  if (c.sign_body) headers.emplace_back("X-Amz-Content-Sha256", payload);

  const sigv4::request_view req{c.request.method, c.request.target, &headers, payload};
  const sigv4::signature_parts parts = sigv4::compute(req, c.creds, c.amz_date, c.opt);
  EXPECT_EQ(parts.canonical_request, read_file(base / "header-canonical-request.txt"));
  EXPECT_EQ(parts.string_to_sign, read_file(base / "header-string-to-sign.txt"));
  EXPECT_EQ(parts.signature, trim_trailing_newlines(read_file(base / "header-signature.txt")));
}

// verify() accepts the request exactly as AWS's signer produced it (its Authorization header,
// not ours), for every case: checks our verifier against an independent implementation.
TEST_P(SigV4AwsCAuthSuite, VerifyAwsSignedRequest) {
  const aws_c_auth_case c = load_aws_c_auth(GetParam());
  const http_request signed_req =
      parse_request(read_file(aws_c_auth_root / c.dir / "header-signed-request.txt"));
  const sigv4::issued_key key{c.creds.secret_access_key, c.creds.session_token};
  const sigv4::key_lookup lookup = [&](std::string_view id) -> const sigv4::issued_key* {
    return id == c.creds.access_key_id ? &key : nullptr;
  };
  sigv4::verify_options vopt;
  vopt.service = c.opt.service;
  vopt.now = c.opt.now + 30s;
  const sigv4::verified v = sigv4::verify(signed_req.method, signed_req.target, signed_req.headers,
                                          sigv4::sha256_hex(signed_req.body), lookup, vopt);
  // verify() normalizes the path as every AWS service but S3 does, so a request signed over
  // the unnormalized path (only those "-unnormalized" cases with dot segments or duplicate
  // slashes) does not verify.
  const bool path_changes = c.request.target.find("/.") != std::string::npos ||
                            c.request.target.find("//") != std::string::npos;
  const auto expected = !c.opt.normalize_path && path_changes
                            ? sigv4::verify_error::signature_mismatch
                            : sigv4::verify_error::none;
  EXPECT_EQ(v.error, expected) << sigv4::to_string(v.error);
  EXPECT_EQ(v.access_key_id, c.creds.access_key_id);
  EXPECT_EQ(v.region, c.opt.region);
}

std::string strip_query_param(std::string target, std::string_view name) {
  const std::size_t q = target.find('?');
  if (q == std::string::npos) return target;
  std::string out = target.substr(0, q + 1);
  std::string_view query = std::string_view(target).substr(q + 1);
  bool first = true;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.substr(0, pair.find('=')) != name) {
      if (!first) out.push_back('&');
      out.append(pair);
      first = false;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

TEST_P(SigV4AwsCAuthSuite, QueryCanonicalization) {
  const aws_c_auth_case c = load_aws_c_auth(GetParam());
  const fs::path base = aws_c_auth_root / c.dir;
  const http_request presigned = parse_request(read_file(base / "query-signed-request.txt"));
  std::string target = strip_query_param(presigned.target, "X-Amz-Signature");
  if (c.omit_token) target = strip_query_param(target, "X-Amz-Security-Token");
  const std::string payload = sigv4::sha256_hex(c.request.body);
  const sigv4::request_view req{c.request.method, target, &c.request.headers, payload};
  const sigv4::signature_parts parts = sigv4::compute(req, c.creds, c.amz_date, c.opt);
  EXPECT_EQ(parts.canonical_request, read_file(base / "query-canonical-request.txt"));
  EXPECT_EQ(parts.string_to_sign, read_file(base / "query-string-to-sign.txt"));
  EXPECT_EQ(parts.signature, trim_trailing_newlines(read_file(base / "query-signature.txt")));
}

INSTANTIATE_TEST_SUITE_P(AwsCAuth, SigV4AwsCAuthSuite,
                         ::testing::ValuesIn(list_cases(aws_c_auth_root, "context.json")),
                         [](const auto& param_info) { return test_name(param_info.param); });

TEST(SigV4SuiteInventory, AllCasesFound) {
  EXPECT_EQ(list_cases(aws_c_auth_root, "context.json").size(), 38U);
  EXPECT_EQ(list_cases(legacy_root, ".req").size(), 34U);
}

// ---------------------------------------------------------------------------------------------
// Legacy aws4_testsuite (as vendored by botocore): .req -> .creq / .sts / .authz

class SigV4LegacySuite : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4LegacySuite, Signs) {
  const fs::path dir = legacy_root / GetParam();
  const std::string stem = dir.filename().string();
  const http_request r = parse_request(read_file(dir / (stem + ".req")));

  sigv4::credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  sigv4::header_list headers = r.headers;
  if (stem == "get-vanilla-with-session-token") {
    // The suite's .req leaves the token out; its harness (botocore's) adds this one.
    creds.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  }
  std::string amz_date;
  for (const auto& [k, v] : headers) {
    if (k == "X-Amz-Date") amz_date = v;
  }
  ASSERT_EQ(amz_date.size(), 16U);
  sigv4::signing_options opt;
  opt.region = "us-east-1";
  opt.service = "service";

  const std::string payload = sigv4::sha256_hex(r.body);
  const sigv4::request_view req{r.method, r.target, &headers, payload};
  const sigv4::signature_parts parts = sigv4::compute(req, creds, amz_date, opt);
  EXPECT_EQ(parts.canonical_request, read_file(dir / (stem + ".creq")));
  EXPECT_EQ(parts.string_to_sign, read_file(dir / (stem + ".sts")));
  EXPECT_EQ(parts.authorization, trim_trailing_newlines(read_file(dir / (stem + ".authz"))));
}

INSTANTIATE_TEST_SUITE_P(Legacy, SigV4LegacySuite,
                         ::testing::ValuesIn(list_cases(legacy_root, ".req")),
                         [](const auto& param_info) { return test_name(param_info.param); });

// ---------------------------------------------------------------------------------------------
// Bedrock vectors: sign() on the wire path, both encodings the SDKs send.

struct bedrock_vector {
  std::size_t index = 0;
  json::object v;
};

json::object load_bedrock_vectors() { return json::parse(read_file(bedrock_vectors)).as_object(); }

std::vector<bedrock_vector> bedrock_vector_params() {
  std::vector<bedrock_vector> out;
  std::error_code ec;
  if (!fs::exists(bedrock_vectors, ec)) return out;
  const json::object doc = load_bedrock_vectors();
  const json::array& vs = doc.at("vectors").as_array();
  for (std::size_t i = 0; i < vs.size(); ++i) out.push_back({i, vs[i].as_object()});
  return out;
}

void PrintTo(const bedrock_vector& v, std::ostream* os) { *os << "vector " << v.index; }

class SigV4BedrockVectors : public ::testing::TestWithParam<bedrock_vector> {};

TEST_P(SigV4BedrockVectors, SignMatchesBotocore) {
  const json::object doc = load_bedrock_vectors();
  const json::object& meta = doc.at("meta").as_object();
  const json::object& v = GetParam().v;
  const auto str = [](const json::value& x) { return json::value_to<std::string>(x); };

  const sigv4::credentials creds{str(meta.at("access_key")), str(meta.at("secret_key")), ""};
  sigv4::signing_options opt;
  opt.region = str(meta.at("region"));
  opt.service = "bedrock";
  opt.now = parse_iso8601("2025-01-01T00:00:00Z");
  ASSERT_EQ(sigv4::amz_date(opt.now), str(meta.at("x-amz-date")));

  sigv4::header_list headers{{"Host", str(meta.at("host"))},
                             {"Content-Type", "application/json"},
                             {"Accept", "application/json"},
                             {"Content-Length", "103"},  // not signed by sign()
                             {"User-Agent", "test"}};
  const std::string payload = sigv4::sha256_hex(str(meta.at("body")));
  const std::string wire_path = str(v.at("wire_path"));
  const sigv4::signature_parts parts = sigv4::sign("POST", wire_path, headers, payload, creds, opt);

  EXPECT_EQ(parts.canonical_request, str(v.at("canonical_request")));
  EXPECT_EQ(parts.string_to_sign, str(v.at("string_to_sign")));
  EXPECT_EQ(parts.signature, str(v.at("signature")));
  EXPECT_EQ(parts.authorization, str(v.at("authorization")));
  const std::string creq_uri =
      parts.canonical_request.substr(5, parts.canonical_request.find('\n', 5) - 5);
  EXPECT_EQ(creq_uri, str(v.at("canonical_uri")));

  // The signed headers were appended to the request.
  ASSERT_GE(headers.size(), 2U);
  EXPECT_EQ(headers[headers.size() - 2],
            (std::pair<std::string, std::string>{"x-amz-date", "20250101T000000Z"}));
  EXPECT_EQ(headers.back(),
            (std::pair<std::string, std::string>{"authorization", parts.authorization}));

  // And the proxy's verifier accepts what the signer produced.
  const sigv4::issued_key key{creds.secret_access_key, ""};
  sigv4::verify_options vopt;
  vopt.now = opt.now;
  const sigv4::verified ok = sigv4::verify(
      "POST", wire_path, headers, payload,
      [&](std::string_view id) { return id == creds.access_key_id ? &key : nullptr; }, vopt);
  EXPECT_EQ(ok.error, sigv4::verify_error::none) << sigv4::to_string(ok.error);
}

INSTANTIATE_TEST_SUITE_P(Bedrock, SigV4BedrockVectors, ::testing::ValuesIn(bedrock_vector_params()),
                         [](const auto& param_info) {
                           const json::object& v = param_info.param.v;
                           const std::string style =
                               json::value_to<std::string>(v.at("wire_path_style"));
                           return test_name(std::to_string(param_info.param.index) + "_" +
                                            json::value_to<std::string>(v.at("operation")) + "_" +
                                            style.substr(0, style.find(' ')));
                         });

TEST(SigV4BedrockVectorInventory, FiftySixVectorsBothStyles) {
  const auto params = bedrock_vector_params();
  EXPECT_EQ(params.size(), 56U);
  std::map<std::string, int> styles;
  for (const auto& p : params) {
    const std::string s = json::value_to<std::string>(p.v.at("wire_path_style"));
    ++styles[s.substr(0, s.find(' '))];
  }
  EXPECT_EQ(styles.size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// Canonicalization details not covered by the suites

sigv4::signing_options bedrock_options() {
  sigv4::signing_options opt;
  opt.region = "us-east-1";
  opt.now = parse_iso8601("2025-01-01T00:00:00Z");
  return opt;
}

std::string canonical_uri_of(std::string_view target, const sigv4::signing_options& opt) {
  const sigv4::header_list headers{{"host", "h"}};
  const sigv4::request_view req{"GET", target, &headers, empty_sha256};
  const std::string creq =
      sigv4::compute(req, {"AK", "SK", ""}, "20250101T000000Z", opt).canonical_request;
  const std::size_t a = creq.find('\n') + 1;
  return creq.substr(a, creq.find('\n', a) - a);
}

TEST(SigV4Canonical, PathEncoding) {
  sigv4::signing_options opt = bedrock_options();
  EXPECT_EQ(canonical_uri_of("/model/a%3A0/invoke", opt), "/model/a%253A0/invoke");
  EXPECT_EQ(canonical_uri_of("/model/a:0/invoke", opt), "/model/a%3A0/invoke");
  EXPECT_EQ(canonical_uri_of("/model/arn%3Ax%2Fy/invoke", opt), "/model/arn%253Ax%252Fy/invoke");
  EXPECT_EQ(canonical_uri_of("", opt), "/");
  EXPECT_EQ(canonical_uri_of("/a/./b/../c//d/", opt), "/a/c/d/");
  opt.double_encode_path = false;  // S3 style: encode once, keep existing escapes
  EXPECT_EQ(canonical_uri_of("/model/a%3a0/invoke", opt), "/model/a%3A0/invoke");
  EXPECT_EQ(canonical_uri_of("/model/a:0/x%2Fy", opt), "/model/a%3A0/x%2Fy");
  opt.normalize_path = false;
  EXPECT_EQ(canonical_uri_of("/a//b/../c", opt), "/a//b/../c");
}

TEST(SigV4Canonical, QueryEncodingAndOrder) {
  const sigv4::header_list headers{{"host", "h"}};
  const sigv4::request_view req{"GET", "/?b=2&a=z&a=y&c&d=%2f%20x+y&&", &headers, empty_sha256};
  const std::string creq =
      sigv4::compute(req, {"AK", "SK", ""}, "20250101T000000Z", bedrock_options())
          .canonical_request;
  EXPECT_EQ(creq.substr(0, creq.find("\nhost:")), "GET\n/\na=y&a=z&b=2&c=&d=%2F%20x%2By");
}

TEST(SigV4Canonical, SignDropsStaleAuthAndSignsOnlyChosenHeaders) {
  sigv4::header_list headers{{"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                             {"Authorization", "Bearer old"},
                             {"X-Amz-Date", "19990101T000000Z"},
                             {"X-Amz-Security-Token", "caller-token"},
                             {"x-amzn-trace-id", "Root=1"},
                             {"X-Amz-User-Agent", "sdk"},
                             {"User-Agent", "sdk"}};
  sigv4::signing_options opt = bedrock_options();
  opt.sign_content_sha256_header = true;
  const sigv4::credentials creds{"AK", "SK", "upstream-token"};
  sigv4::sign("POST", "/model/m/invoke", headers, empty_sha256, creds, opt);
  const sigv4::signature_parts parts =
      sigv4::sign("POST", "/model/m/invoke", headers, empty_sha256, creds, opt);
  EXPECT_EQ(parts.signed_headers,
            "host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-user-agent");
  const auto count = [&](std::string_view name) {
    return std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
      std::string lower = h.first;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      return lower == name;
    });
  };
  EXPECT_EQ(count("authorization"), 1);
  EXPECT_EQ(count("x-amz-date"), 1);
  EXPECT_EQ(count("x-amz-security-token"), 1);
  EXPECT_EQ(count("x-amz-content-sha256"), 1);
  EXPECT_EQ(headers.back().second, parts.authorization);
  EXPECT_NE(parts.canonical_request.find("x-amz-security-token:upstream-token\n"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// verify(): one crafted request per outcome

class SigV4Verify : public ::testing::Test {
 protected:
  const std::chrono::system_clock::time_point t0_ = parse_iso8601("2025-01-01T12:00:00Z");
  const sigv4::credentials client_{"AKIDCLIENT", "client-secret-key", ""};
  std::map<std::string, sigv4::issued_key, std::less<>> keys_{
      {"AKIDCLIENT", {"client-secret-key", ""}},
      {"AKIDTEMP", {"temp-secret-key", "issued-session-token"}}};
  const std::string body_ = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})";
  const std::string target_ = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";

  sigv4::key_lookup lookup() {
    return [this](std::string_view id) -> const sigv4::issued_key* {
      const auto it = keys_.find(id);
      return it == keys_.end() ? nullptr : &it->second;
    };
  }

  sigv4::header_list signed_request(const sigv4::credentials& creds, sigv4::signing_options opt,
                                    std::string_view body) const {
    sigv4::header_list h{{"Host", "localhost:8443"}, {"Content-Type", "application/json"}};
    sigv4::sign("POST", target_, h, sigv4::sha256_hex(body), creds, opt);
    return h;
  }

  sigv4::signing_options opts(std::chrono::system_clock::time_point at) const {
    sigv4::signing_options o;
    o.region = "us-west-2";
    o.now = at;
    return o;
  }

  sigv4::verified check(const sigv4::header_list& h, std::string_view body,
                        std::chrono::system_clock::time_point now) {
    sigv4::verify_options vo;
    vo.now = now;
    return sigv4::verify("POST", target_, h, sigv4::sha256_hex(body), lookup(), vo);
  }
  sigv4::verify_error error_of(const sigv4::header_list& h) { return check(h, body_, t0_).error; }

  static void set_header(sigv4::header_list& h, std::string_view name, std::string value) {
    for (auto& [k, v] : h) {
      if (k == name) v = std::move(value);
    }
  }
  static void drop_header(sigv4::header_list& h, std::string_view name) {
    std::erase_if(h, [&](const auto& kv) { return kv.first == name; });
  }
};

TEST_F(SigV4Verify, RoundTrip) {
  const sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  const sigv4::verified v = check(h, body_, t0_);
  EXPECT_TRUE(v);
  EXPECT_EQ(v.error, sigv4::verify_error::none);
  EXPECT_EQ(v.access_key_id, "AKIDCLIENT");
  EXPECT_EQ(v.region, "us-west-2");
}

TEST_F(SigV4Verify, RawColonPathAsSentByAnthropicSdk) {
  sigv4::header_list h{{"host", "localhost"}};
  const std::string raw = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke";
  sigv4::sign("POST", raw, h, sigv4::sha256_hex(body_), client_, opts(t0_));
  sigv4::verify_options vo;
  vo.now = t0_;
  EXPECT_TRUE(sigv4::verify("POST", raw, h, sigv4::sha256_hex(body_), lookup(), vo));
  // The same bytes under the other encoding are a different canonical URI.
  EXPECT_EQ(sigv4::verify("POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke", h,
                          sigv4::sha256_hex(body_), lookup(), vo)
                .error,
            sigv4::verify_error::signature_mismatch);
}

TEST_F(SigV4Verify, WrongSecretIsSignatureMismatch) {
  const sigv4::header_list h =
      signed_request({"AKIDCLIENT", "not-the-secret", ""}, opts(t0_), body_);
  EXPECT_EQ(error_of(h), sigv4::verify_error::signature_mismatch);
}

TEST_F(SigV4Verify, UnknownAccessKey) {
  const sigv4::header_list h = signed_request({"AKIDNOBODY", "whatever", ""}, opts(t0_), body_);
  const sigv4::verified v = check(h, body_, t0_);
  EXPECT_EQ(v.error, sigv4::verify_error::unknown_access_key);
  EXPECT_EQ(v.access_key_id, "AKIDNOBODY");
}

TEST_F(SigV4Verify, ClockSkewWindow) {
  EXPECT_EQ(error_of(signed_request(client_, opts(t0_ - 6min), body_)),
            sigv4::verify_error::clock_skew);
  EXPECT_EQ(error_of(signed_request(client_, opts(t0_ + 6min), body_)),
            sigv4::verify_error::clock_skew);
  EXPECT_EQ(error_of(signed_request(client_, opts(t0_ - 4min), body_)), sigv4::verify_error::none);
  EXPECT_EQ(error_of(signed_request(client_, opts(t0_ + 4min), body_)), sigv4::verify_error::none);
}

TEST_F(SigV4Verify, HostNotSigned) {
  // Signed without host, host added afterwards (as a careless client or a tamperer would).
  sigv4::header_list h{{"content-type", "application/json"}, {"x-amz-date", sigv4::amz_date(t0_)}};
  const std::string payload = sigv4::sha256_hex(body_);  // request_view only borrows it
  const sigv4::request_view req{"POST", target_, &h, payload};
  sigv4::signing_options o = opts(t0_);
  const sigv4::signature_parts parts = sigv4::compute(req, client_, sigv4::amz_date(t0_), o);
  h.emplace_back("host", "localhost");
  h.emplace_back("authorization", parts.authorization);
  EXPECT_EQ(error_of(h), sigv4::verify_error::host_not_signed);
}

TEST_F(SigV4Verify, SignedHeaderMissing) {
  sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  drop_header(h, "Content-Type");
  EXPECT_EQ(error_of(h), sigv4::verify_error::signed_header_missing);
}

TEST_F(SigV4Verify, TamperedBodyWithContentShaHeader) {
  sigv4::signing_options o = opts(t0_);
  o.sign_content_sha256_header = true;
  const sigv4::header_list h = signed_request(client_, o, body_);
  EXPECT_EQ(check(h, body_, t0_).error, sigv4::verify_error::none);
  EXPECT_EQ(check(h, body_ + " ", t0_).error, sigv4::verify_error::payload_hash_mismatch);
}

TEST_F(SigV4Verify, TamperedBodyWithoutContentShaHeader) {
  const sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  EXPECT_EQ(check(h, body_ + " ", t0_).error, sigv4::verify_error::signature_mismatch);
}

TEST_F(SigV4Verify, TamperedSignedHeaderOrPath) {
  sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  set_header(h, "Content-Type", "text/plain");
  EXPECT_EQ(error_of(h), sigv4::verify_error::signature_mismatch);
  const sigv4::header_list h2 = signed_request(client_, opts(t0_), body_);
  sigv4::verify_options vo;
  vo.now = t0_;
  EXPECT_EQ(
      sigv4::verify("POST", "/model/other/converse", h2, sigv4::sha256_hex(body_), lookup(), vo)
          .error,
      sigv4::verify_error::signature_mismatch);
}

TEST_F(SigV4Verify, SessionTokens) {
  // A token on a key issued without one.
  EXPECT_EQ(
      error_of(signed_request({"AKIDCLIENT", "client-secret-key", "made-up"}, opts(t0_), body_)),
      sigv4::verify_error::session_token_refused);
  // The issued token: accepted.
  EXPECT_EQ(error_of(signed_request({"AKIDTEMP", "temp-secret-key", "issued-session-token"},
                                    opts(t0_), body_)),
            sigv4::verify_error::none);
  // A different token.
  EXPECT_EQ(error_of(signed_request({"AKIDTEMP", "temp-secret-key", "issued-session-tokeN"},
                                    opts(t0_), body_)),
            sigv4::verify_error::session_token_refused);
  // No token on a key that needs one.
  EXPECT_EQ(error_of(signed_request({"AKIDTEMP", "temp-secret-key", ""}, opts(t0_), body_)),
            sigv4::verify_error::session_token_refused);
}

TEST_F(SigV4Verify, MissingOrForeignAuthorization) {
  sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  drop_header(h, "authorization");
  EXPECT_EQ(error_of(h), sigv4::verify_error::missing_authorization);
  h.emplace_back("Authorization", "Bearer bm-key-123");
  EXPECT_EQ(error_of(h), sigv4::verify_error::missing_authorization);
}

TEST_F(SigV4Verify, MalformedAuthorization) {
  const sigv4::header_list good = signed_request(client_, opts(t0_), body_);
  std::string auth;
  for (const auto& [k, v] : good) {
    if (k == "authorization") auth = v;
  }
  const std::string sig = signature_from_authorization(auth);
  const std::string cred = "Credential=AKIDCLIENT/20250101/us-west-2/bedrock/aws4_request";
  const std::string sh = "SignedHeaders=content-type;host;x-amz-date";
  const std::vector<std::string> malformed{
      "AWS4-HMAC-SHA256 ",
      "AWS4-HMAC-SHA256 " + cred + ", " + sh,                                   // no signature
      "AWS4-HMAC-SHA256 " + cred + ", Signature=" + sig,                        // no headers
      "AWS4-HMAC-SHA256 " + sh + ", Signature=" + sig,                          // no credential
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + sig.substr(1),  // short sig
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + std::string(64, 'G'),
      "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20250101/us-west-2/bedrock, " + sh +
          ", Signature=" + sig,
      "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20250101/us-west-2/bedrock/aws4_request/x, " + sh +
          ", Signature=" + sig,
      "AWS4-HMAC-SHA256 Credential=AKIDCLIENT//us-west-2/bedrock/aws4_request, " + sh +
          ", Signature=" + sig,
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + sig + ", Signature=" + sig,
      "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=, Signature=" + sig,
      "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, Signature=" + sig,
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + sig + ", Extra=1",
      "AWS4-HMAC-SHA256 " + cred + " " + sh + " Signature",
  };
  for (const std::string& bad : malformed) {
    sigv4::header_list h = good;
    set_header(h, "authorization", bad);
    EXPECT_EQ(error_of(h), sigv4::verify_error::malformed_authorization) << bad;
  }
  // Two Authorization headers.
  sigv4::header_list twice = good;
  twice.emplace_back("Authorization", auth);
  EXPECT_EQ(error_of(twice), sigv4::verify_error::malformed_authorization);
}

TEST_F(SigV4Verify, TolerantAuthorizationSpacing) {
  const sigv4::header_list good = signed_request(client_, opts(t0_), body_);
  std::string auth;
  for (const auto& [k, v] : good) {
    if (k == "authorization") auth = v;
  }
  const std::string sig = signature_from_authorization(auth);
  const std::string cred = "Credential=AKIDCLIENT/20250101/us-west-2/bedrock/aws4_request";
  const std::string sh = "SignedHeaders=content-type;host;x-amz-date";
  for (const std::string& ok : {
           "AWS4-HMAC-SHA256 " + cred + "," + sh + ",Signature=" + sig,
           "  AWS4-HMAC-SHA256   " + cred + " ,  " + sh + " , Signature=" + sig + " ",
           "AWS4-HMAC-SHA256 " + cred + " " + sh + " Signature=" + sig,
           "AWS4-HMAC-SHA256 Signature=" + sig + ", " + sh + ", " + cred,
       }) {
    sigv4::header_list h = good;
    set_header(h, "authorization", ok);
    EXPECT_EQ(error_of(h), sigv4::verify_error::none) << ok;
  }
}

TEST_F(SigV4Verify, BadScope) {
  // Service s3 in the scope.
  sigv4::signing_options o = opts(t0_);
  o.service = "s3";
  EXPECT_EQ(error_of(signed_request(client_, o, body_)), sigv4::verify_error::bad_scope);
  // A region that is not a DNS label.
  o = opts(t0_);
  o.region = "evil.example.com";
  EXPECT_EQ(error_of(signed_request(client_, o, body_)), sigv4::verify_error::bad_scope);
  // Scope day differs from x-amz-date's day (still within the skew window: 23:58 vs 00:01).
  const auto near_midnight = parse_iso8601("2025-01-02T00:01:00Z");
  sigv4::header_list h{{"host", "localhost"}, {"x-amz-date", "20250102T000100Z"}};
  const std::string payload = sigv4::sha256_hex(body_);  // request_view only borrows it
  const sigv4::request_view req{"POST", target_, &h, payload};
  const sigv4::signature_parts parts =
      sigv4::compute(req, client_, "20250101T235800Z", opts(near_midnight));
  h.emplace_back("authorization", parts.authorization);
  EXPECT_EQ(check(h, body_, near_midnight).error, sigv4::verify_error::bad_scope);
  // Wrong terminator.
  sigv4::header_list h2 = signed_request(client_, opts(t0_), body_);
  for (auto& [k, v] : h2) {
    if (k == "authorization") v.replace(v.find("aws4_request"), 12, "aws5_request");
  }
  EXPECT_EQ(error_of(h2), sigv4::verify_error::bad_scope);
}

TEST_F(SigV4Verify, MissingOrUnparsableDate) {
  sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  sigv4::header_list garbled = h;
  drop_header(h, "x-amz-date");
  EXPECT_EQ(error_of(h), sigv4::verify_error::missing_date);
  set_header(garbled, "x-amz-date", "20251301T000000Z");  // month 13
  EXPECT_EQ(error_of(garbled), sigv4::verify_error::missing_date);
}

TEST_F(SigV4Verify, Http2AuthorityStandsInForHost) {
  sigv4::header_list h = signed_request(client_, opts(t0_), body_);
  for (auto& [k, v] : h) {
    if (k == "Host") k = ":authority";
  }
  EXPECT_EQ(error_of(h), sigv4::verify_error::none);
}

TEST(SigV4VerifyErrors, NamesAreDistinctAndSecretFree) {
  std::vector<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(sigv4::verify_error::signature_mismatch); ++e) {
    names.push_back(sigv4::to_string(static_cast<sigv4::verify_error>(e)));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "unknown"), names.end());
}

}  // namespace
