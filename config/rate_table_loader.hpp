#pragma once
/// Loads and validates a rate-table file (the format is documented in docs/pricing.md) into a
/// `metering::rate_table`. Used at start (`load_file` validates the table the config names) and on
/// every reload: a table with any error is rejected as a whole, so the proxy keeps the old one.
///
/// Pure code apart from reading the file: yaml-cpp for parsing, no logging. Prices are taken from
/// the YAML scalar text and parsed exactly (`metering::parse_rate_per_million`), never through a
/// floating-point conversion. Errors reuse `config_error`: file:line:col, YAML path, a fix.
/// Thread safety: the functions share no state; call them from any thread.
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::config {

struct rate_table_result {
  /// The loaded table, `index()` already called; null when there is any error.
  std::shared_ptr<const metering::rate_table> table;
  /// Every problem found, not just the first; sorted by position.
  std::vector<config_error> errors;
  /// Legal but suspicious rows (output priced far below input, an all-zero row, a cache read
  /// dearer than input, an empty table). Never block loading.
  std::vector<config_error> warnings;
};

/// Reads and validates the rate table at `path`. Messages and `rate_entry::location` name the
/// file as `path` was given; `rate_table::source_path` is the absolute path. Never throws.
rate_table_result load_rate_table_file(const std::string& path);

/// Same, from text; `file_name` is used in messages, locations and `source_path`.
rate_table_result load_rate_table_string(std::string_view yaml, std::string_view file_name);

/// The AWS regions a rate table may name: every commercial and GovCloud region where Bedrock
/// runs (botocore's endpoint list for `bedrock`, plus every region of the shipped price CSV).
/// Bedrock has no endpoint in the China partition, so cn-* regions are refused.
std::span<const std::string_view> bedrock_regions() noexcept;
bool is_bedrock_region(std::string_view region) noexcept;

/// Why `model` is not a base model id a rate table may price (an ARN, an inference-profile id,
/// no provider prefix, characters a model id never has), or empty when it is one.
std::string base_model_problem(const std::string& model);

}  // namespace bedrock_meter::config
