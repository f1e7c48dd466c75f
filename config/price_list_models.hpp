#pragma once
/// The mapping from AWS Price List model names to Bedrock model ids that `bedrock-meter rates
/// import` reads (format: docs/pricing.md, "Rates from the AWS Price List"). The Price List names
/// a model by a display name (`model` attribute of the AmazonBedrock offer, `servicename` of the
/// AmazonBedrockFoundationModels offer without " (Amazon Bedrock Edition)"); the rate table needs
/// the id the client sends. Nothing is guessed: a name missing here is reported, not priced.
///
/// Pure apart from reading the file; errors are `config_error`s with file:line:col.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace bedrock_meter::config {

struct price_list_model {
  std::string name;                 ///< as the Price List spells it ("Claude Haiku 4.5")
  std::string offer;                ///< "" = either offer, else the one offer it applies to
  std::vector<std::string> models;  ///< base model ids this name prices (usually one)
  /// Input tokens above which the offer's long-context rates apply; the Price List says
  /// that a long-context rate exists, never where it starts. Unset: such rates are reported.
  std::optional<std::uint64_t> long_context_above;
  std::string location;  ///< "file:line"
};

struct price_list_models_result {
  std::vector<price_list_model> models;  ///< empty when there is any error
  std::vector<config_error> errors;
};

/// The mapping shipped in config/rates/price-list-models.yaml, compiled into the binary.
std::string_view shipped_price_list_models() noexcept;
constexpr std::string_view shipped_price_list_models_name =
    "config/rates/price-list-models.yaml (built in)";

price_list_models_result load_price_list_models_file(const std::string& path);
price_list_models_result load_price_list_models_string(std::string_view yaml,
                                                       std::string_view file_name);

}  // namespace bedrock_meter::config
