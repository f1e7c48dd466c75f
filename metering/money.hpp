#pragma once
/// Exact money. Rates are integers in micro-USD per 1M tokens (so $0.00875 / 1M is 8750), and a
/// cost is tokens x rate in pico-USD (1e-12 USD): exact for every published Bedrock price, no
/// floating point anywhere between the rate table and the ledger. Pure code.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bedrock_meter::metering {

/// A rate: micro-USD per 1,000,000 tokens (equivalently pico-USD per token).
using rate_micro_per_m = std::int64_t;
/// An amount of money in pico-USD (1e-12 USD). int64 holds up to about 9.2 million USD; totals
/// beyond one request are summed in `money_total`.
using pico_usd = std::int64_t;
/// Large sums (counters across months, fleets): 128-bit pico-USD. `__extension__` because
/// -Wpedantic rejects the GCC/Clang builtin `__int128` otherwise (and it is no std type).
__extension__ typedef __int128 money_total;

inline constexpr pico_usd pico_per_usd = 1'000'000'000'000;

/// Cost of `tokens` at `rate`: exact (tokens x rate pico-USD).
constexpr pico_usd cost_of(std::uint64_t tokens, rate_micro_per_m rate) noexcept {
  return static_cast<pico_usd>(tokens) * rate;
}

/// `list` less a discount of `discount_ppm` parts per million (an EDP discount), rounded toward
/// zero: what net figures show.
constexpr money_total net_of(money_total list, std::int64_t discount_ppm) noexcept {
  return list * (1'000'000 - discount_ppm) / 1'000'000;
}

/// Parses a non-negative decimal USD amount per 1M tokens ("3", "3.00", "0.00875") into micro-USD
/// exactly. Rejects negatives, exponents, more than 6 decimals, and garbage. Never uses floating
/// point.
std::optional<rate_micro_per_m> parse_rate_per_million(std::string_view text) noexcept;

/// Formats pico-USD as a decimal USD string with `decimals` places (rounded half away from zero),
/// e.g. 12345678900000 -> "12.345679" with 6 decimals.
std::string format_usd(money_total pico, int decimals = 6);

/// pico-USD as a double in USD, for Prometheus (which only has floats). Not for accounting.
double to_usd_double(money_total pico) noexcept;

}  // namespace bedrock_meter::metering
