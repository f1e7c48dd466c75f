#include "app/args.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <stdexcept>

namespace bedrock_meter::app {

std::string_view args::get(std::string_view name, std::string_view fallback) const {
  for (const auto& [k, v] : options)
    if (k == name) return v;
  return fallback;
}

std::vector<std::string> args::get_list(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, value] : options) {
    if (k != name) continue;
    for (std::size_t pos = 0; pos <= value.size();) {
      const auto comma = std::min(value.find(',', pos), value.size());
      if (comma > pos) out.emplace_back(value.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  return out;
}

void throw_exception_from_error(const usage_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

boost::system::result<args, usage_error> args::parse(int argc, char** argv) {
  args out;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!a.starts_with("--")) {
      out.positional.push_back(a);
    } else if (const auto eq = a.find('='); eq != std::string_view::npos) {
      out.options.emplace_back(a.substr(2, eq - 2), a.substr(eq + 1));
    } else if (a == "--help" || a == "--version" || a == "--strict" || a == "--verbose" ||
               a == "--plan" || a == "--net" || a == "--journal" || a == "--dry-run") {
      out.options.emplace_back(a.substr(2), "1");
    } else if (i + 1 < argc) {
      out.options.emplace_back(a.substr(2), argv[++i]);
    } else {
      return usage_error{"option " + std::string(a) + " needs a value"};
    }
  }
  return out;
}

std::optional<std::vector<config::price_list_model>> load_models_or_report(std::string_view path) {
  auto r = path.empty()
               ? config::load_price_list_models_string(config::shipped_price_list_models(),
                                                       config::shipped_price_list_models_name)
               : config::load_price_list_models_file(std::string(path));
  for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
  if (!r.errors.empty()) return std::nullopt;
  return std::move(r.models);
}

std::shared_ptr<const config::config> load_or_report(std::string_view path) {
  auto r = config::load_file(std::string(path));
  for (const auto& w : r.warnings) std::cerr << "warning: " << w.to_string() << '\n';
  if (!r.value) {
    for (const auto& e : r.errors) std::cerr << e.to_string() << '\n';
    std::cerr << "bedrock-meter: " << r.errors.size() << " problem(s) in " << path << '\n';
    return nullptr;
  }
  return std::make_shared<const config::config>(std::move(*r.value));
}

std::optional<std::uint64_t> parse_count(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

namespace {

std::optional<std::int64_t> parse_date_ms(std::string_view s) {
  int y = 0;
  unsigned m = 0, d = 0;
  if (std::from_chars(s.data(), s.data() + 4, y).ec != std::errc{} ||
      std::from_chars(s.data() + 5, s.data() + 7, m).ec != std::errc{} ||
      std::from_chars(s.data() + 8, s.data() + 10, d).ec != std::errc{})
    return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m},
                                        std::chrono::day{d}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::sys_days{ymd}.time_since_epoch())
      .count();
}

}  // namespace

std::optional<std::int64_t> parse_when(std::string_view s, std::int64_t now_ms) {
  if (s.empty()) return std::nullopt;
  if (s.size() == 10 && s[4] == '-' && s[7] == '-') return parse_date_ms(s);
  const char unit = s.back();
  const auto n = parse_count(s.substr(0, s.size() - 1));
  if (!n || *n == 0) return std::nullopt;
  std::int64_t ms = 0;
  switch (unit) {
    case 'm': ms = 60'000; break;
    case 'h': ms = 3'600'000; break;
    case 'd': ms = 86'400'000; break;
    default: return std::nullopt;
  }
  return now_ms - static_cast<std::int64_t>(*n) * ms;
}

std::optional<std::chrono::sys_days> parse_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  const auto ms = parse_date_ms(s);
  if (!ms) return std::nullopt;
  return std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(*ms)));
}

std::string format_day(std::chrono::sys_days d) {
  const std::chrono::year_month_day ymd(d);
  char out[16];
  std::snprintf(out, sizeof out, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return out;
}

std::string format_day(std::int64_t ms) {
  return format_day(std::chrono::floor<std::chrono::days>(
      std::chrono::sys_time<std::chrono::milliseconds>(std::chrono::milliseconds(ms))));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace bedrock_meter::app
