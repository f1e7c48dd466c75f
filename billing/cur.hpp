#pragma once
/// The AWS bill's Bedrock lines (Cost and Usage Report, CUR 2.0 and legacy CUR), summed into
/// the same keys the ledger is summed into, for `bedrock-meter reconcile`. Pure code: the caller
/// feeds bytes (already decompressed) and gets sums and problems back.
///
/// CUR has no per-request rows: its finest grain is usage type x day (or hour) x resource. So the
/// bill and the ledger meet at (day, billed region, model, scope, tier, batch, latency), per token
/// class; see docs/finops.md, "Reconciliation with the AWS bill".
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "billing/price_list.hpp"
#include "config/price_list_models.hpp"
#include "metering/money.hpp"

namespace bedrock_meter::billing {

/// RFC 4180 CSV, fed in chunks of any size (a record may span chunks and lines); each complete
/// record goes to the callback. Quotes are doubled inside quoted fields; CRLF and LF both end a
/// record.
class csv_reader {
 public:
  using record_fn = std::function<void(const std::vector<std::string>&)>;
  explicit csv_reader(record_fn fn) : fn_(std::move(fn)) {}
  void feed(std::string_view bytes);
  /// Ends the input: a last record without a newline is delivered.
  void finish();

 private:
  void end_field();
  void end_record();

  record_fn fn_;
  std::vector<std::string> record_;
  std::string field_;
  bool quoted_ = false;      ///< inside a quoted field
  bool quote_seen_ = false;  ///< a quote inside a quoted field: the end, or the first of two
  bool any_ = false;         ///< the current record has content
};

/// What a bill line or a ledger row counts. `input` and `output` are text tokens: a Nova Sonic
/// session's speech tokens are billed under their own usage types (`...-speech-input-tokens`),
/// so the ledger's speech tokens are taken out of its input and output and compared apart.
enum class token_class : std::uint8_t {
  input,
  output,
  cache_read,
  cache_write_5m,
  cache_write_1h,
  speech_input,
  speech_output
};
inline constexpr std::size_t token_classes = 7;
inline constexpr std::array<std::string_view, token_classes> token_class_names = {
    "input",          "output",       "cache_read",   "cache_write_5m",
    "cache_write_1h", "speech_input", "speech_output"};
/// Speech classes are shown only where a side has speech tokens (most bills have none).
constexpr bool is_speech(std::size_t cls) noexcept {
  return cls == static_cast<std::size_t>(token_class::speech_input) ||
         cls == static_cast<std::size_t>(token_class::speech_output);
}

/// Where the bill and the ledger are compared. `scope` is "global" or "regional" (the bill
/// prices in-region calls and geographic profiles alike); `model` is a base model id.
struct usage_key {
  std::string day;  ///< YYYY-MM-DD, UTC
  std::string region;
  std::string model;
  std::string scope;
  std::string tier;  ///< standard, priority, flex
  bool batch = false;
  bool latency_optimized = false;
  auto operator<=>(const usage_key&) const = default;
};

struct usage_totals {
  std::array<std::uint64_t, token_classes> tokens{};  ///< by token_class
  metering::money_total cost = 0;                     ///< pico-USD
};

/// One usage type's unit price on the bill, against which the rate table is checked.
struct billed_rate {
  usage_key key;
  token_class cls = token_class::input;
  std::int64_t micro_per_m = 0;  ///< the bill's unblended rate, USD per 1M tokens in micro-USD
  std::string usage_type;
};

struct cur_result {
  std::map<usage_key, usage_totals> bill;
  std::vector<billed_rate> rates;  ///< one per distinct (key minus day, class, rate)
  std::uint64_t rows = 0;          ///< data rows read
  std::uint64_t bedrock_rows = 0;  ///< Bedrock usage rows
  std::uint64_t used_rows = 0;     ///< of those, summed into `bill`
  /// Bedrock rows not summed, by reason (an unmapped model name, a meter that is not a text
  /// token, ...), with a count and one example usage type.
  std::map<std::string, std::pair<std::uint64_t, std::string>> skipped;
  std::optional<std::string> first_day, last_day;  ///< of the rows summed
  std::vector<std::string> errors;                 ///< a file that is not a CUR, a missing column
};

/// Reads CUR files one after another into one result.
class cur_summer {
 public:
  explicit cur_summer(std::span<const config::price_list_model> mapping);
  /// Starts a file; `name` is how errors name it.
  void begin(std::string name);
  void feed(std::string_view bytes) { csv_.feed(bytes); }
  void end();
  cur_result take() { return std::move(r_); }

 private:
  struct columns;
  void on_record(const std::vector<std::string>& rec);
  void on_header(const std::vector<std::string>& rec);
  void on_row(const std::vector<std::string>& rec);
  void skip(std::string reason, std::string_view usage_type);
  bool is_model_usage(std::string_view code, std::string_view entity, std::string_view line_type,
                      std::string_view usage_type,
                      const std::function<const std::string&()>& product_name);
  struct usage_type_info;
  const usage_type_info& classified(std::string_view usage_type);
  const std::string& model_of(const std::string& name);
  void add(const usage_key& key, token_class tc, std::uint64_t tokens, std::uint64_t cost_pico);
  void add_rate(usage_key key, token_class tc, std::int64_t micro_per_m,
                std::string_view usage_type);

  std::span<const config::price_list_model> mapping_;
  std::string file_;
  bool header_seen_ = false;
  bool failed_ = false;
  std::shared_ptr<columns> cols_;
  csv_reader csv_;
  cur_result r_;
  std::map<std::tuple<usage_key, token_class, std::int64_t>, bool> rates_seen_;
  /// A month of CUR repeats a few hundred usage types and names millions of times: each is
  /// classified, and each name matched against the mapping, once.
  struct usage_type_info {
    classification c;
    std::string model_key;  ///< owned copy of c.model_key
  };
  std::unordered_map<std::string, usage_type_info> usage_types_;
  std::unordered_map<std::string, std::string> models_by_name_;
};

/// The model id a bill's model name stands for: the mapping names compared as their words and
/// numbers regardless of order, case and punctuation ("Claude4.6Sonnet", "Claude Sonnet 4.6"),
/// so a usage type's model key and a product name both find it. Empty when none or several.
std::string model_for_bill_name(std::string_view name,
                                std::span<const config::price_list_model> mapping);

/// The AWS region of a usage-type prefix ("USE1" -> "us-east-1"); empty when unknown or
/// ambiguous (APS3 is ap-south-1 in some sources and ap-southeast-3 in others: the row's region
/// column decides).
std::string_view region_of_billing_code(std::string_view code);

}  // namespace bedrock_meter::billing
