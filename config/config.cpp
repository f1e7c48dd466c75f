// The public API of config/config.hpp: the load entry points and the helpers the rest of the
// program shares with the loader. The loader itself is config/loader.hpp and its section files.
#include "config/config.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <system_error>
#include <vector>

#include "config/loader.hpp"
#include "config/text.hpp"
#include "config/yaml_reader.hpp"

namespace bedrock_meter::config {
namespace {

bool all_of(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so `regoin` is one
/// edit from `region`.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  const std::size_t m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

std::string config_error::to_string() const {
  std::string out = file;
  out += ':';
  out += std::to_string(line);
  out += ':';
  out += std::to_string(column);
  out += ": ";
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return out;
}

// Within two edits and fewer edits than the word has letters, so `x` does not suggest `ca_file`.
// A candidate that is a prefix of the word or the other way round counts as two edits, so
// `warning` suggests `warn`.
std::string_view closest_match(std::string_view word,
                               std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (const auto candidate : candidates) {
    std::size_t d = edit_distance(word, candidate);
    if (std::min(word.size(), candidate.size()) >= 3 &&
        (word.starts_with(candidate) || candidate.starts_with(word))) {
      d = std::min<std::size_t>(d, 2);
    }
    if (d < best_distance && d < word.size()) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

bool models_config::operator==(const models_config& other) const {
  return std::equal(mappings.begin(), mappings.end(), other.mappings.begin(), other.mappings.end(),
                    [](const metering::model_mapping& a, const metering::model_mapping& b) {
                      return a.arn == b.arn && a.base_model == b.base_model &&
                             a.hourly_usd == b.hourly_usd && a.team == b.team && a.app == b.app;
                    });
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  const auto d = parse_duration_uncapped(text);
  if (!d || *d > max_duration) return std::nullopt;
  return d;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits])) ++digits;
  const auto n = parse_uint(text.substr(0, digits));
  if (!n) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "KiB") {
    multiplier = 1024;
  } else if (unit == "MiB") {
    multiplier = std::uint64_t{1024} * 1024;
  } else if (unit == "GiB") {
    multiplier = std::uint64_t{1024} * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  if (*n > std::numeric_limits<std::uint64_t>::max() / multiplier) return std::nullopt;
  return *n * multiplier;
}

bool is_valid_region(std::string_view region) {
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t dash = region.find('-');
    parts.push_back(region.substr(0, dash));
    if (dash == std::string_view::npos) break;
    region.remove_prefix(dash + 1);
  }
  if (parts.size() != 3 && parts.size() != 4) return false;
  if (parts[0].size() != 2 || !all_of(parts[0], is_lower)) return false;
  if (parts.size() == 4) {
    const std::string_view partition = parts[1];
    const bool iso = partition.starts_with("iso") &&
                     std::all_of(partition.begin() + 3, partition.end(), is_lower);
    if (partition != "gov" && !iso) return false;
  }
  return all_of(parts[parts.size() - 2], is_lower) && all_of(parts.back(), is_digit);
}

bool is_valid_label_value(std::string_view value) {
  return !value.empty() && value.size() <= 64 &&
         std::all_of(value.begin(), value.end(), [](char c) {
           return is_lower(c) || is_upper(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
         });
}

std::string_view to_string(credential_source source) {
  return credential_sources.names.at(static_cast<std::size_t>(source));
}

std::optional<credential_source> parse_credential_source(std::string_view text) {
  return credential_sources.find(text);
}

load_result load_string(std::string_view yaml, std::string_view file_name, env_lookup getenv) {
  std::error_code ec;
  auto base = std::filesystem::absolute(std::filesystem::path(file_name), ec).parent_path();
  if (ec) base = std::filesystem::current_path(ec);
  return load_config(yaml, std::string(file_name), base.lexically_normal(), getenv,
                     std::string(file_name));
}

load_result load_file(const std::string& path, env_lookup getenv) {
  text_file file = read_text_file(path, "config");
  if (file.error) {
    load_result r;
    r.errors.push_back(std::move(*file.error));
    return r;
  }
  return load_config(file.text, path, file.absolute.parent_path(), getenv, file.absolute.string());
}

}  // namespace bedrock_meter::config
