#pragma once
/// AWS Price List offers -> a bedrock-meter rate table (`bedrock-meter rates import`).
///
/// Two offers carry Bedrock model prices: `AmazonBedrock` (first-party and open-weight models;
/// usage types such as `USE1-NovaPro-input-tokens-priority`, unit `1K tokens`) and
/// `AmazonBedrockFoundationModels` (Marketplace-billed models such as Claude 4.x; usage types
/// `USE1-MP:USE1_InputTokenCount_Global-Units` (legacy) or `USE1-MP:USE1_input_tokens_global_
/// standard-Units` (current), unit `Units` with "Million ... Tokens" in the description). Both
/// the bulk per-region `index.json` and GetProducts result pages are read.
///
/// Every usage type is classified by exact components, never by suffix or substring: a suffix
/// match once priced input at the 1-hour cache-write rate in a peer's production. What cannot be
/// classified, an unknown unit, a tiered price, or a model name missing from the mapping is
/// reported and left out, never guessed. Pure code: text in, text and a report out.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/price_list_models.hpp"
#include "metering/model_id.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::billing {

/// What one Price List usage type bills.
enum class meter_kind : std::uint8_t {
  input,
  output,
  cache_read,
  cache_write_5m,
  cache_write_1h,
  speech_input,     ///< Nova Sonic speech (audio) input tokens; its text tokens are input/output
  speech_output,    ///< Nova Sonic speech (audio) output tokens
  model_unit_hour,  ///< Provisioned Throughput, per model unit per hour
  reserved_input,   ///< Reserved tier, per 1,000 input tokens per minute per hour
  reserved_output,  ///< Reserved tier, per 1,000 output tokens per minute per hour
};
std::string_view to_string(meter_kind k) noexcept;

struct meter {
  meter_kind kind = meter_kind::input;
  std::optional<metering::inference_scope> scope;  ///< nullopt: in-region and geo alike
  metering::service_tier tier = metering::service_tier::standard;
  metering::latency_mode latency = metering::latency_mode::standard;
  bool batch = false;
  bool long_context = false;
  metering::commitment_term term = metering::commitment_term::no_commit;  ///< capacity meters
};

/// A usage type's meter, or why it is not one this importer prices.
struct classification {
  std::optional<meter> m;
  std::string why_not;
  /// AmazonBedrock shape: the model key between the region code and the meter ("NovaPro",
  /// "Llama3-1-405B", "Claude4.6Sonnet"); empty for the Marketplace shape.
  std::string_view model_key;
};
/// `offer` is "AmazonBedrock" or "AmazonBedrockFoundationModels".
classification classify_usage_type(std::string_view offer, std::string_view usage_type);

/// A Price List price in the rate table's unit: micro-USD per 1M tokens for token meters,
/// micro-USD per hour (model unit or 1K TPM) for capacity meters; or why not.
struct normalised_price {
  std::optional<std::int64_t> micro;
  std::string why_not;
};
normalised_price normalise_price(meter_kind kind, std::string_view unit,
                                 std::string_view description, std::string_view usd);

/// micro-USD as decimal text with at least 2 decimals ("3.00", "0.00875"), as rate tables
/// write prices.
std::string micro_usd_text(std::int64_t micro);

/// One offer file as read from disk; `name` is how messages name it.
struct offer_text {
  std::string name;
  std::string json;
};

/// A row of an offer that did not become a price.
struct skipped_row {
  std::string file;
  std::string offer;
  std::string sku;
  std::string usage_type;
  std::string model_name;  ///< the Price List's name, when the row had one
  std::string reason;
};

struct import_options {
  std::vector<std::string> regions;  ///< empty: every region in the offers
};

struct import_result {
  std::string yaml;  ///< the rate table (valid for config/rate_table_loader), or empty
  std::size_t entries = 0;
  std::size_t provisioned = 0;
  std::size_t rows_read = 0;    ///< products with a usage type, in the selected regions
  std::size_t rows_priced = 0;  ///< of those, the ones in the table
  std::vector<skipped_row> skipped;
  /// Files that are not Price List offers at all; the import fails with them.
  std::vector<std::string> errors;
};

import_result import_price_list(std::span<const offer_text> offers,
                                std::span<const config::price_list_model> mapping,
                                const import_options& opts);

}  // namespace bedrock_meter::billing
