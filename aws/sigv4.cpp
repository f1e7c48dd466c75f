#include "aws/sigv4.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace bedrock_meter::aws::sigv4 {
namespace {

constexpr std::string_view algorithm_name = "AWS4-HMAC-SHA256";
constexpr std::string_view scope_terminator = "aws4_request";
constexpr std::size_t sha256_len = 32;
constexpr std::size_t sha256_block = 64;
constexpr std::size_t amz_date_len = 16;  // YYYYMMDDTHHMMSSZ
constexpr std::size_t signature_hex_len = 64;

using digest = std::array<unsigned char, sha256_len>;

// ---------------------------------------------------------------------------------------------
// Hashing

// Fetched once: under OpenSSL 3, EVP_sha256() makes every EVP_DigestInit do an implicit provider
// fetch (a locked cache lookup); an explicit fetch avoids that. Immutable after the thread-safe
// static initialisation, so nothing global is mutated per request.
const EVP_MD* sha256_md() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

// One EVP_MD_CTX reused for every digest of one signing operation: one allocation instead of one
// per hash (a signature takes 12 SHA-256 runs).
class hasher {
 public:
  hasher() : ctx_(EVP_MD_CTX_new()) {
    // Only fails when out of memory; a signer that cannot hash must not pretend to succeed.
    if (ctx_ == nullptr) std::abort();
  }
  ~hasher() { EVP_MD_CTX_free(ctx_); }
  hasher(const hasher&) = delete;
  hasher& operator=(const hasher&) = delete;

  void init() { EVP_DigestInit_ex2(ctx_, sha256_md(), nullptr); }
  void update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  void update(std::string_view s) { update(s.data(), s.size()); }
  digest final() {
    digest d{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, d.data(), &len);
    return d;
  }

  digest hash(std::string_view data) {
    init();
    update(data);
    return final();
  }

  // HMAC-SHA256 (RFC 2104) over a key given in two pieces, so "AWS4" + secret needs no
  // temporary string holding the secret.
  digest hmac(std::string_view key_prefix, std::string_view key, std::string_view data) {
    std::array<unsigned char, sha256_block> k{};
    if (key_prefix.size() + key.size() > sha256_block) {
      init();
      update(key_prefix);
      update(key);
      const digest kd = final();
      std::memcpy(k.data(), kd.data(), kd.size());
    } else {
      if (!key_prefix.empty()) std::memcpy(k.data(), key_prefix.data(), key_prefix.size());
      if (!key.empty()) std::memcpy(k.data() + key_prefix.size(), key.data(), key.size());
    }
    std::array<unsigned char, sha256_block> pad{};
    for (std::size_t i = 0; i < sha256_block; ++i) {
      pad[i] = static_cast<unsigned char>(k[i] ^ 0x36U);
    }
    init();
    update(pad.data(), pad.size());
    update(data);
    const digest inner = final();
    for (std::size_t i = 0; i < sha256_block; ++i) {
      pad[i] = static_cast<unsigned char>(k[i] ^ 0x5cU);
    }
    init();
    update(pad.data(), pad.size());
    update(inner.data(), inner.size());
    digest out = final();
    OPENSSL_cleanse(k.data(), k.size());
    OPENSSL_cleanse(pad.data(), pad.size());
    return out;
  }

  digest hmac(const digest& key, std::string_view data) {
    return hmac({}, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), data);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Derived signing keys, per thread. The key depends only on (secret, day, region, service), so
// it is derived with four HMACs once per key and day instead of on every signature and every
// verification (AWS SDKs cache it the same way). bench/run's profile of the proxy showed the
// derivation as the largest share of SigV4's cost: each request is verified and re-signed.
// Thread-local, so no lock; a few entries cover a worker's keys (its upstream key and the
// clients it verifies). Entries hold a copy of the secret and are wiped when replaced and when
// the thread ends.
class signing_key_cache {
 public:
  signing_key_cache() = default;
  signing_key_cache(const signing_key_cache&) = delete;
  signing_key_cache& operator=(const signing_key_cache&) = delete;
  ~signing_key_cache() {
    for (auto& e : entries_) wipe(e);
  }

  digest get(hasher& h, std::string_view secret, std::string_view day, std::string_view region,
             std::string_view service) {
    for (const auto& e : entries_) {
      if (e.used && e.day == day && e.region == region && e.service == service &&
          e.secret == secret)
        return e.key;
    }
    entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    wipe(e);
    digest key = h.hmac("AWS4", secret, day);
    key = h.hmac(key, region);
    key = h.hmac(key, service);
    key = h.hmac(key, scope_terminator);
    e.secret.assign(secret);
    e.day.assign(day);
    e.region.assign(region);
    e.service.assign(service);
    e.key = key;
    e.used = true;
    return key;
  }

 private:
  struct entry {
    bool used = false;
    std::string secret;
    std::string day;
    std::string region;
    std::string service;
    digest key{};
  };
  static void wipe(entry& e) {
    if (!e.secret.empty()) OPENSSL_cleanse(e.secret.data(), e.secret.size());
    OPENSSL_cleanse(e.key.data(), e.key.size());
    e.secret.clear();
    e.used = false;
  }

  static constexpr std::size_t entries = 8;
  std::array<entry, entries> entries_{};
  std::size_t next_ = 0;
};

digest signing_key(hasher& h, std::string_view secret, std::string_view day,
                   std::string_view region, std::string_view service) {
  thread_local signing_key_cache cache;
  return cache.get(h, secret, day, region, service);
}

void append_hex(std::string& out, const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  const std::size_t at = out.size();
  out.resize(at + 2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out[at + 2 * i] = digits[data[i] >> 4U];
    out[at + 2 * i + 1] = digits[data[i] & 0x0fU];
  }
}

// ---------------------------------------------------------------------------------------------
// Character classes and case-insensitive helpers (ASCII only: header names are tokens)

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// <0, 0, >0 like strcmp, comparing lowercased bytes (the canonical order of header names).
int icompare(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto ca = static_cast<unsigned char>(ascii_lower(a[i]));
    const auto cb = static_cast<unsigned char>(ascii_lower(b[i]));
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

constexpr bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Python's str.split() whitespace, which botocore uses to collapse header values; it also turns
// obsolete line folding (CRLF + indent) into a single space as the suites expect.
constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_pct(std::string& out, unsigned char c) {
  static constexpr char digits[] = "0123456789ABCDEF";
  out.push_back('%');
  out.push_back(digits[c >> 4U]);
  out.push_back(digits[c & 0x0fU]);
}

// AWS UriEncode: every byte but the unreserved set becomes %XX (upper-case hex).
void append_uri_encoded(std::string& out, std::string_view s, bool keep_slash) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      append_pct(out, c);
    }
  }
}

// Decodes %XX escapes and re-encodes every byte, so that already-encoded and raw input give the
// same canonical form (`%E1%88%B4` and the raw UTF-8 bytes both sign as `%E1%88%B4`). A `%` not
// followed by two hex digits is taken literally. `+` is not a space here: AWS SDKs never emit it
// for a space, and decoding it would make a literal `+` unsignable.
void append_reencoded(std::string& out, std::string_view s, bool keep_slash) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = static_cast<unsigned char>(hi * 16 + lo);
        i += 2;
        if (c == '/') {
          // An encoded slash stays encoded: decoding it would change the path's segments.
          append_pct(out, c);
          continue;
        }
      }
    }
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      append_pct(out, c);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Canonical request pieces

// Removes `.`/`..` segments and empty segments (duplicate slashes); keeps a trailing slash when
// the path had one. Matches the aws-c-auth "-normalized" and the botocore normalize-path cases.
std::string normalize_path(std::string_view path) {
  std::vector<std::string_view> segments;
  segments.reserve(8);
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view seg = path.substr(pos, end - pos);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    pos = end + 1;
  }
  std::string out;
  out.reserve(path.size() + 1);
  for (const std::string_view seg : segments) {
    out.push_back('/');
    out.append(seg);
  }
  if (out.empty() || path.back() == '/') out.push_back('/');
  return out;
}

// True when `path` has nothing normalize_path would change: the common case, which then costs
// no allocation.
bool is_normalized(std::string_view path) noexcept {
  if (path.empty() || path.front() != '/') return false;
  if (path.find("//") != std::string_view::npos) return false;
  for (std::size_t i = path.find("/."); i != std::string_view::npos; i = path.find("/.", i + 1)) {
    const std::string_view rest = path.substr(i + 2);
    if (rest.empty() || rest.front() == '/') return false;                          // "/."
    if (rest.front() == '.' && (rest.size() == 1 || rest[1] == '/')) return false;  // "/.."
  }
  return true;
}

void append_canonical_uri(std::string& out, std::string_view path, const signing_options& opt) {
  std::string normalized;
  if (opt.normalize_path && !is_normalized(path)) {
    normalized = normalize_path(path);
    path = normalized;
  }
  if (path.empty()) path = "/";
  if (opt.double_encode_path) {
    // Every SDK but S3's: the path as sent (already percent-encoded) is encoded once more.
    append_uri_encoded(out, path, true);
  } else {
    append_reencoded(out, path, true);
  }
}

void append_canonical_query(std::string& out, std::string_view query) {
  if (query.empty()) return;
  struct param {
    std::string key;
    std::string value;
  };
  std::vector<param> params;
  params.reserve(static_cast<std::size_t>(std::count(query.begin(), query.end(), '&')) + 1);
  std::size_t pos = 0;
  while (pos <= query.size()) {
    std::size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    param p;
    append_reencoded(p.key, pair.substr(0, eq), false);
    if (eq != std::string_view::npos) append_reencoded(p.value, pair.substr(eq + 1), false);
    params.push_back(std::move(p));
  }
  std::sort(params.begin(), params.end(), [](const param& a, const param& b) {
    return a.key != b.key ? a.key < b.key : a.value < b.value;
  });
  bool first = true;
  for (const param& p : params) {
    if (!first) out.push_back('&');
    first = false;
    out.append(p.key);
    out.push_back('=');
    out.append(p.value);
  }
}

// Trims and collapses runs of whitespace to one space.
void append_header_value(std::string& out, std::string_view value) {
  bool pending_space = false;
  bool any = false;
  for (const char c : value) {
    if (is_space(c)) {
      pending_space = any;
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    any = true;
    out.push_back(c);
  }
}

void append_lower(std::string& out, std::string_view s) {
  for (const char c : s) out.push_back(ascii_lower(c));
}

struct header_ref {
  std::string_view name;
  std::string_view value;
  std::size_t index;  // position in the request: duplicates keep their order
};

// Emits "name:v1,v2\n" per distinct name of the sorted refs into `creq`, and "a;b" into
// `signed_list`.
void append_sorted_headers(std::string& creq, std::string& signed_list,
                           std::vector<header_ref>& refs) {
  std::sort(refs.begin(), refs.end(), [](const header_ref& a, const header_ref& b) {
    const int c = icompare(a.name, b.name);
    return c != 0 ? c < 0 : a.index < b.index;
  });
  for (std::size_t i = 0; i < refs.size();) {
    if (!signed_list.empty()) signed_list.push_back(';');
    append_lower(signed_list, refs[i].name);
    append_lower(creq, refs[i].name);
    creq.push_back(':');
    std::size_t j = i;
    for (; j < refs.size() && iequals(refs[j].name, refs[i].name); ++j) {
      if (j != i) creq.push_back(',');
      append_header_value(creq, refs[j].value);
    }
    creq.push_back('\n');
    i = j;
  }
}

// "METHOD\nURI\nQUERY\n"
void append_request_head(std::string& creq, std::string_view method, std::string_view target,
                         const signing_options& opt) {
  creq.append(method);
  creq.push_back('\n');
  const std::size_t q = target.find('?');
  append_canonical_uri(creq, target.substr(0, q), opt);
  creq.push_back('\n');
  if (q != std::string_view::npos) append_canonical_query(creq, target.substr(q + 1));
  creq.push_back('\n');
}

// "\nSIGNED;HEADERS\nPAYLOAD_HASH", after the canonical headers.
void append_request_tail(std::string& creq, std::string_view signed_headers,
                         std::string_view payload_sha256_hex) {
  creq.push_back('\n');
  creq.append(signed_headers);
  creq.push_back('\n');
  creq.append(payload_sha256_hex);
}

std::size_t estimate_size(std::string_view target, const header_list& headers) {
  std::size_t n = 128 + 3 * target.size();
  for (const auto& [name, value] : headers) n += name.size() + value.size() + 2;
  return n;
}

// Hashes the canonical request, builds the string to sign, derives the key and signs. Fills
// every field of `parts` except canonical_request and signed_headers, which the caller built.
void finish(signature_parts& parts, hasher& h, std::string_view access_key_id,
            std::string_view secret, std::string_view amz_date_value, std::string_view region,
            std::string_view service) {
  const std::string_view day =
      amz_date_value.substr(0, std::min<std::size_t>(8, amz_date_value.size()));

  const digest creq_hash = h.hash(parts.canonical_request);
  std::string& sts = parts.string_to_sign;
  sts.clear();
  sts.reserve(algorithm_name.size() + amz_date_value.size() + day.size() + region.size() +
              service.size() + scope_terminator.size() + 2 * sha256_len + 8);
  sts.append(algorithm_name).push_back('\n');
  sts.append(amz_date_value).push_back('\n');
  const std::size_t scope_at = sts.size();
  sts.append(day).push_back('/');
  sts.append(region).push_back('/');
  sts.append(service).push_back('/');
  sts.append(scope_terminator);
  const std::size_t scope_len = sts.size() - scope_at;
  sts.push_back('\n');
  append_hex(sts, creq_hash.data(), creq_hash.size());

  digest key = signing_key(h, secret, day, region, service);
  const digest sig = h.hmac(key, sts);
  OPENSSL_cleanse(key.data(), key.size());

  parts.signature.clear();
  parts.signature.reserve(signature_hex_len);
  append_hex(parts.signature, sig.data(), sig.size());

  const std::string_view scope(sts.data() + scope_at, scope_len);
  std::string& auth = parts.authorization;
  auth.clear();
  auth.reserve(algorithm_name.size() + access_key_id.size() + scope.size() +
               parts.signed_headers.size() + parts.signature.size() + 48);
  auth.append(algorithm_name).append(" Credential=").append(access_key_id).push_back('/');
  auth.append(scope).append(", SignedHeaders=").append(parts.signed_headers);
  auth.append(", Signature=").append(parts.signature);
}

using header_filter = bool (*)(std::string_view name);

signature_parts compute_filtered(const request_view& req, const credentials& creds,
                                 std::string_view amz_date_value, const signing_options& opt,
                                 header_filter filter) {
  static const header_list no_headers;
  const header_list& headers = req.headers != nullptr ? *req.headers : no_headers;

  signature_parts parts;
  std::string& creq = parts.canonical_request;
  creq.reserve(estimate_size(req.target, headers));
  append_request_head(creq, req.method, req.target, opt);

  std::vector<header_ref> refs;
  refs.reserve(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    if (filter == nullptr || filter(name)) refs.push_back({name, value, i});
  }
  parts.signed_headers.reserve(refs.size() * 16);
  append_sorted_headers(creq, parts.signed_headers, refs);
  append_request_tail(creq, parts.signed_headers, req.payload_sha256_hex);

  hasher h;
  finish(parts, h, creds.access_key_id, creds.secret_access_key, amz_date_value, opt.region,
         opt.service);
  return parts;
}

bool is_signable_upstream(std::string_view name) {
  return iequals(name, "host") || iequals(name, "content-type") || iequals(name, "accept") ||
         istarts_with(name, "x-amz-");
}

// ---------------------------------------------------------------------------------------------
// Verification helpers

// The value of a non-empty run of decimal digits; nullopt when empty or anything else is there.
std::optional<int> parse_digits(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  int v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s) {
  if (s.size() != amz_date_len || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  const auto y = parse_digits(s.substr(0, 4));
  const auto mo = parse_digits(s.substr(4, 2));
  const auto d = parse_digits(s.substr(6, 2));
  const auto h = parse_digits(s.substr(9, 2));
  const auto mi = parse_digits(s.substr(11, 2));
  const auto sec = parse_digits(s.substr(13, 2));
  if (!y || !mo || !d || !h || !mi || !sec) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*y},
                                        std::chrono::month{static_cast<unsigned>(*mo)},
                                        std::chrono::day{static_cast<unsigned>(*d)}};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *sec > 59) return std::nullopt;
  return std::chrono::sys_days{ymd} + std::chrono::hours{*h} + std::chrono::minutes{*mi} +
         std::chrono::seconds{*sec};
}

bool is_lower_hex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_region_name(std::string_view s) noexcept {
  // The region may later name an upstream host; refuse anything but a DNS label's characters.
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// What the Authorization header says; `error` is missing_authorization or
// malformed_authorization when it could not be read, and then the rest is unset.
struct parsed_authorization {
  verify_error error = verify_error::none;
  std::string_view access_key_id;
  std::string_view day;
  std::string_view region;
  std::string_view service;
  std::string_view terminator;
  std::string_view signed_headers;
  std::string_view signature;
};

struct authorization_components {
  std::string_view credential;
  std::string_view signed_headers;
  std::string_view signature;
};

// `Credential=..., SignedHeaders=..., Signature=...`: each exactly once, in any order, separated
// by commas and/or whitespace (SDKs differ). nullopt when one is missing, repeated or unknown.
std::optional<authorization_components> split_components(std::string_view v) {
  authorization_components out;
  bool have_credential = false;
  bool have_signed = false;
  bool have_signature = false;
  std::size_t pos = 0;
  while (pos < v.size()) {
    if (is_space(v[pos]) || v[pos] == ',') {
      ++pos;
      continue;
    }
    std::size_t end = pos;
    while (end < v.size() && !is_space(v[end]) && v[end] != ',') ++end;
    const std::string_view item = v.substr(pos, end - pos);
    pos = end;
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    bool* seen = nullptr;
    if (key == "Credential") {
      seen = &have_credential;
      out.credential = value;
    } else if (key == "SignedHeaders") {
      seen = &have_signed;
      out.signed_headers = value;
    } else if (key == "Signature") {
      seen = &have_signature;
      out.signature = value;
    } else {
      return std::nullopt;
    }
    if (*seen) return std::nullopt;  // duplicated component
    *seen = true;
  }
  if (!have_credential || !have_signed || !have_signature) return std::nullopt;
  return out;
}

// `AKID/20250101/us-east-1/bedrock/aws4_request`: exactly five non-empty parts.
std::optional<std::array<std::string_view, 5>> split_scope(std::string_view credential) {
  std::array<std::string_view, 5> scope{};
  std::size_t n = 0;
  std::size_t from = 0;
  while (true) {
    const std::size_t slash = credential.find('/', from);
    if (n == scope.size()) return std::nullopt;  // too many parts
    scope[n++] = credential.substr(
        from, slash == std::string_view::npos ? std::string_view::npos : slash - from);
    if (slash == std::string_view::npos) break;
    from = slash + 1;
  }
  if (n != scope.size()) return std::nullopt;
  for (const std::string_view part : scope) {
    if (part.empty()) return std::nullopt;
  }
  return scope;
}

// `a;b;c`: no empty names.
bool is_signed_header_list(std::string_view list) noexcept {
  return !list.empty() && list.front() != ';' && list.back() != ';' &&
         list.find(";;") == std::string_view::npos;
}

// `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request,
//  SignedHeaders=a;b, Signature=hex`.
parsed_authorization parse_authorization(std::string_view v) {
  parsed_authorization out;
  std::size_t i = 0;
  while (i < v.size() && is_space(v[i])) ++i;
  v.remove_prefix(i);
  if (v.size() <= algorithm_name.size() || v.substr(0, algorithm_name.size()) != algorithm_name ||
      !is_space(v[algorithm_name.size()])) {
    out.error = verify_error::missing_authorization;
    return out;
  }
  const auto components = split_components(v.substr(algorithm_name.size()));
  const auto scope = components ? split_scope(components->credential) : std::nullopt;
  if (!scope || components->signature.size() != signature_hex_len ||
      !is_lower_hex(components->signature) || !is_signed_header_list(components->signed_headers)) {
    out.error = verify_error::malformed_authorization;
    return out;
  }
  out.access_key_id = (*scope)[0];
  out.day = (*scope)[1];
  out.region = (*scope)[2];
  out.service = (*scope)[3];
  out.terminator = (*scope)[4];
  out.signed_headers = components->signed_headers;
  out.signature = components->signature;
  return out;
}

const std::string* find_header(const header_list& headers, std::string_view name,
                               std::size_t* count = nullptr) {
  const std::string* found = nullptr;
  std::size_t n = 0;
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      if (found == nullptr) found = &v;
      ++n;
    }
  }
  if (count != nullptr) *count = n;
  return found;
}

template <typename F>
void for_each_signed_name(std::string_view list, F&& f) {
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t end = list.find(';', pos);
    if (end == std::string_view::npos) end = list.size();
    if (!f(list.substr(pos, end - pos))) return;
    pos = end + 1;
  }
}

// Joins the values of every `name` header, in request order, as "v1,v2".
void append_joined_values(std::string& creq, const header_list& headers, std::string_view name) {
  bool first = true;
  for (const auto& [k, v] : headers) {
    if (!iequals(k, name)) continue;
    if (!first) creq.push_back(',');
    first = false;
    append_header_value(creq, v);
  }
}

// The scope names our service and the aws4_request terminator, an 8-digit day, and a region that
// is a DNS label.
bool is_acceptable_scope(const parsed_authorization& pa, const verify_options& opt) {
  return pa.service == opt.service && pa.terminator == scope_terminator && pa.day.size() == 8 &&
         parse_digits(pa.day).has_value() && is_region_name(pa.region);
}

// x-amz-date: present and well-formed (missing_date), on the scope's day (bad_scope), within
// max_skew of now (clock_skew).
verify_error check_date(const std::string* date_header, std::string_view scope_day,
                        const verify_options& opt) {
  if (date_header == nullptr) return verify_error::missing_date;
  const std::optional<std::chrono::system_clock::time_point> when = parse_amz_date(*date_header);
  if (!when) return verify_error::missing_date;
  if (std::string_view(*date_header).substr(0, 8) != scope_day) return verify_error::bad_scope;
  const auto skew = *when > opt.now ? *when - opt.now : opt.now - *when;
  if (skew > opt.max_skew) return verify_error::clock_skew;
  return verify_error::none;
}

// Over HTTP/2 the AWS SDK for JavaScript replaces `host` with the `:authority` pseudo-header
// before signing, so `:authority` is what it signs; AWS accepts either as the signed host.
bool host_is_signed(std::string_view signed_headers) {
  bool host_signed = false;
  for_each_signed_name(signed_headers, [&](std::string_view name) {
    host_signed = iequals(name, "host") || name == ":authority";
    return !host_signed;
  });
  return host_signed;
}

// Canonical headers over exactly the headers the client listed, in the client's order (SDKs
// send them sorted; using the list verbatim keeps us byte-identical with what they hashed).
// False when one of them is absent.
bool append_listed_headers(std::string& creq, std::string_view signed_headers,
                           const header_list& headers) {
  bool all_present = true;
  for_each_signed_name(signed_headers, [&](std::string_view name) {
    std::string_view lookup_name = name;
    if (find_header(headers, name) == nullptr) {
      // HTTP/2 carries the host as :authority; the session may hand it over unrenamed.
      if (iequals(name, "host") && find_header(headers, ":authority") != nullptr) {
        lookup_name = ":authority";
      } else {
        all_present = false;
        return false;
      }
    }
    append_lower(creq, name);
    creq.push_back(':');
    append_joined_values(creq, headers, lookup_name);
    creq.push_back('\n');
    return true;
  });
  return all_present;
}

// x-amz-security-token equals the token the key was issued with, and is sent when it has one.
bool session_token_accepted(const header_list& headers, const issued_key& key) {
  const std::string* token = find_header(headers, "x-amz-security-token");
  if (token == nullptr) return key.session_token.empty();
  return !key.session_token.empty() && constant_time_equal(*token, key.session_token);
}

// x-amz-content-sha256, when sent, is the body's hash. This also refuses UNSIGNED-PAYLOAD and
// streaming payloads: the body must be covered.
bool payload_hash_accepted(const header_list& headers, std::string_view payload_sha256_hex) {
  const std::string* content_sha = find_header(headers, "x-amz-content-sha256");
  return content_sha == nullptr || *content_sha == payload_sha256_hex;
}

}  // namespace

// -----------------------------------------------------------------------------------------------

std::string sha256_hex(std::string_view data) {
  hasher h;
  const digest d = h.hash(data);
  std::string out;
  out.reserve(2 * sha256_len);
  append_hex(out, d.data(), d.size());
  return out;
}

std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data) {
  hasher h;
  return h.hmac({}, key, data);
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day_point = floor<days>(secs);
  const year_month_day ymd{day_point};
  const hh_mm_ss hms{secs - day_point};
  const auto put = [](char* p, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  std::string out(amz_date_len, '0');
  put(out.data(), static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
  put(out.data() + 4, static_cast<unsigned>(ymd.month()), 2);
  put(out.data() + 6, static_cast<unsigned>(ymd.day()), 2);
  out[8] = 'T';
  put(out.data() + 9, static_cast<unsigned>(hms.hours().count()), 2);
  put(out.data() + 11, static_cast<unsigned>(hms.minutes().count()), 2);
  put(out.data() + 13, static_cast<unsigned>(hms.seconds().count()), 2);
  out[15] = 'Z';
  return out;
}

signature_parts compute(const request_view& req, const credentials& creds,
                        std::string_view amz_date_value, const signing_options& opt) {
  return compute_filtered(req, creds, amz_date_value, opt, nullptr);
}

signature_parts sign(std::string_view method, std::string_view target, header_list& headers,
                     std::string_view payload_sha256_hex, const credentials& creds,
                     const signing_options& opt) {
  std::erase_if(headers, [](const auto& h) {
    return iequals(h.first, "authorization") || iequals(h.first, "x-amz-date") ||
           iequals(h.first, "x-amz-security-token") || iequals(h.first, "x-amz-content-sha256");
  });
  std::string date = amz_date(opt.now);
  headers.emplace_back("x-amz-date", date);
  if (!creds.session_token.empty()) {
    headers.emplace_back("x-amz-security-token", creds.session_token);
  }
  if (opt.sign_content_sha256_header) {
    headers.emplace_back("x-amz-content-sha256", std::string(payload_sha256_hex));
  }
  const request_view req{method, target, &headers, payload_sha256_hex};
  signature_parts parts = compute_filtered(req, creds, date, opt, &is_signable_upstream);
  headers.emplace_back("authorization", parts.authorization);
  return parts;
}

std::string_view to_string(verify_error e) noexcept {
  switch (e) {
    case verify_error::none: return "none";
    case verify_error::missing_authorization: return "missing_authorization";
    case verify_error::malformed_authorization: return "malformed_authorization";
    case verify_error::unknown_access_key: return "unknown_access_key";
    case verify_error::bad_scope: return "bad_scope";
    case verify_error::missing_date: return "missing_date";
    case verify_error::clock_skew: return "clock_skew";
    case verify_error::host_not_signed: return "host_not_signed";
    case verify_error::signed_header_missing: return "signed_header_missing";
    case verify_error::payload_hash_mismatch: return "payload_hash_mismatch";
    case verify_error::session_token_refused: return "session_token_refused";
    case verify_error::signature_mismatch: return "signature_mismatch";
  }
  return "unknown";
}

verified verify(std::string_view method, std::string_view target, const header_list& headers,
                std::string_view payload_sha256_hex, const key_lookup& lookup,
                const verify_options& opt) {
  verified out;
  const auto fail = [&out](verify_error e) {
    out.error = e;
    return out;
  };

  std::size_t auth_count = 0;
  const std::string* auth = find_header(headers, "authorization", &auth_count);
  if (auth == nullptr) return fail(verify_error::missing_authorization);
  const parsed_authorization pa = parse_authorization(*auth);
  if (pa.error != verify_error::none) return fail(pa.error);
  if (auth_count > 1) return fail(verify_error::malformed_authorization);
  out.access_key_id = std::string(pa.access_key_id);

  const issued_key* key = lookup ? lookup(pa.access_key_id) : nullptr;
  if (key == nullptr) return fail(verify_error::unknown_access_key);
  if (!is_acceptable_scope(pa, opt)) return fail(verify_error::bad_scope);
  out.region = std::string(pa.region);

  const std::string* date_header = find_header(headers, "x-amz-date");
  if (const verify_error e = check_date(date_header, pa.day, opt); e != verify_error::none) {
    return fail(e);
  }
  if (!host_is_signed(pa.signed_headers)) return fail(verify_error::host_not_signed);

  signature_parts parts;
  std::string& creq = parts.canonical_request;
  creq.reserve(estimate_size(target, headers));
  signing_options sopt;
  sopt.service = opt.service;
  append_request_head(creq, method, target, sopt);
  if (!append_listed_headers(creq, pa.signed_headers, headers)) {
    return fail(verify_error::signed_header_missing);
  }
  if (!session_token_accepted(headers, *key)) return fail(verify_error::session_token_refused);
  if (!payload_hash_accepted(headers, payload_sha256_hex)) {
    return fail(verify_error::payload_hash_mismatch);
  }
  append_request_tail(creq, pa.signed_headers, payload_sha256_hex);
  parts.signed_headers = std::string(pa.signed_headers);

  hasher h;
  finish(parts, h, pa.access_key_id, key->secret_access_key, *date_header, pa.region, pa.service);
  if (!constant_time_equal(parts.signature, pa.signature)) {
    return fail(verify_error::signature_mismatch);
  }
  out.signature = std::move(parts.signature);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace bedrock_meter::aws::sigv4
