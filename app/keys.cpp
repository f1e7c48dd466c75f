// `bedrock-meter keys create`: mint a client credential, printed once with the config lines to add.
#include <iostream>
#include <string>
#include <string_view>

#include <openssl/rand.h>

#include "app/commands.hpp"
#include "aws/sigv4.hpp"

namespace bedrock_meter::app {

namespace {

/// `n` characters drawn uniformly from `alphabet` with the OS's CSPRNG; empty when it fails.
std::string random_chars(std::size_t n, std::string_view alphabet) {
  std::string out;
  out.reserve(n);
  // Rejection sampling keeps every character equally likely.
  const unsigned limit = 256 - (256 % static_cast<unsigned>(alphabet.size()));
  while (out.size() < n) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) return {};  // no entropy: the caller reports it
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == n) break;
    }
  }
  return out;
}

int print_sigv4_key(std::string_view team, std::string_view app) {
  const std::string id = random_chars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
  const std::string secret =
      random_chars(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  if (id.empty() || secret.empty()) {
    std::cerr << "keys create: the system's random number generator failed\n";
    return 1;
  }
  std::cout << "New SigV4 client key for team '" << team << "', app '" << app
            << "'. The secret is shown only now.\n\n"
            << "  AWS_ACCESS_KEY_ID=BMAK" << id << "\n  AWS_SECRET_ACCESS_KEY=" << secret
            << "\n\nAdd to the proxy config under auth.access_keys (better: keep the secret in "
               "an environment variable and use secret_env):\n\n"
            << "    - access_key_id: BMAK" << id << "\n      secret_access_key: \"" << secret
            << "\"\n      team: " << team << "\n      app: " << app << "\n";
  return 0;
}

int print_bearer_key(std::string_view team, std::string_view app) {
  const std::string random =
      random_chars(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
  if (random.empty()) {
    std::cerr << "keys create: the system's random number generator failed\n";
    return 1;
  }
  const std::string token = "bmk-" + random;
  std::cout << "New bearer key for team '" << team << "', app '" << app
            << "'. The key is shown only now; the proxy stores only its SHA-256.\n\n"
            << "  AWS_BEARER_TOKEN_BEDROCK=" << token
            << "\n\nAdd to the proxy config under auth.bearer_keys:\n\n"
            << "    - sha256: " << aws::sigv4::sha256_hex(token) << "\n      team: " << team
            << "\n      app: " << app << "\n      name: " << team << "-" << app << "\n";
  return 0;
}

}  // namespace

int keys_create_command(const args& a) {
  const auto team = a.get("team");
  const auto app = a.get("app");
  const auto type = a.get("type", "sigv4");
  if (!config::is_valid_label_value(team) || !config::is_valid_label_value(app)) {
    std::cerr << "keys create: --team and --app are required ([A-Za-z0-9_.-], 1-64 chars)\n";
    return 2;
  }
  if (type == "sigv4") return print_sigv4_key(team, app);
  if (type == "bearer") return print_bearer_key(team, app);
  std::cerr << "keys create: --type must be sigv4 or bearer\n";
  return 2;
}

}  // namespace bedrock_meter::app
