#include "metering/money.hpp"

#include <algorithm>
#include <limits>

namespace bedrock_meter::metering {
namespace {

__extension__ typedef unsigned __int128 u128;

/// Decimal places of a rate: micro-USD.
constexpr int rate_decimals = 6;
/// Decimal places of pico-USD.
constexpr int pico_decimals = 12;

constexpr u128 pow10(int n) noexcept {
  u128 v = 1;
  for (int i = 0; i < n; ++i) v *= 10;
  return v;
}

/// Appends the decimal digits of `v` to `out`.
void append_u128(std::string& out, u128 v) {
  char buf[40];
  std::size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  } while (v != 0);
  while (n > 0) out.push_back(buf[--n]);
}

}  // namespace

std::optional<rate_micro_per_m> parse_rate_per_million(std::string_view text) noexcept {
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<rate_micro_per_m>::max());
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };

  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  // "3", "3.5", "0.00875". Not "", ".5", "3.", "-1", "+1", "1e-3", " 1", "1,5".
  if (whole.empty() || !std::all_of(whole.begin(), whole.end(), is_digit)) return std::nullopt;
  if (dot != std::string_view::npos &&
      (frac.empty() || !std::all_of(frac.begin(), frac.end(), is_digit))) {
    return std::nullopt;
  }
  // Digits past the sixth decimal are accepted only when zero ("0.1000000" from a price list):
  // the value is still exact. A non-zero seventh decimal is a price we cannot hold.
  if (frac.size() > rate_decimals &&
      frac.find_first_not_of('0', rate_decimals) != std::string_view::npos) {
    return std::nullopt;
  }

  std::uint64_t value = 0;
  for (const char c : whole) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (value > (max - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  for (int i = 0; i < rate_decimals; ++i) {
    const std::uint64_t d =
        static_cast<std::size_t>(i) < frac.size()
            ? static_cast<std::uint64_t>(frac[static_cast<std::size_t>(i)] - '0')
            : 0;
    if (value > (max - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  return static_cast<rate_micro_per_m>(value);
}

std::string format_usd(money_total pico, int decimals) {
  decimals = std::clamp(decimals, 0, pico_decimals);
  const bool negative = pico < 0;
  // The magnitude as unsigned: -INT128_MIN does not fit in __int128.
  const u128 magnitude = negative ? u128{0} - static_cast<u128>(pico) : static_cast<u128>(pico);
  const u128 step = pow10(pico_decimals - decimals);
  u128 units = magnitude / step;                // in 10^-decimals USD
  if ((magnitude % step) * 2 >= step) ++units;  // half away from zero (applied to the magnitude)

  const u128 scale = pow10(decimals);
  std::string out;
  out.reserve(48);
  if (negative && units != 0) out.push_back('-');  // never "-0.00"
  append_u128(out, units / scale);
  if (decimals > 0) {
    out.push_back('.');
    std::string frac;
    append_u128(frac, units % scale);
    out.append(static_cast<std::size_t>(decimals) - frac.size(), '0');
    out += frac;
  }
  return out;
}

double to_usd_double(money_total pico) noexcept {
  // Split so the whole dollars convert exactly and only the sub-dollar part is rounded.
  const money_total whole = pico / pico_per_usd;
  const money_total rest = pico % pico_per_usd;
  return static_cast<double>(whole) + static_cast<double>(rest) / static_cast<double>(pico_per_usd);
}

}  // namespace bedrock_meter::metering
