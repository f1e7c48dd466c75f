// The pricing sections: `pricing` (which rate table, loaded and validated here, and when it is
// re-read) and `models` (what application inference profiles, provisioned and imported models'
// ARNs mean for pricing and attribution).
#include "config/loader.hpp"

#include <algorithm>

#include "config/rate_table_loader.hpp"
#include "config/text.hpp"

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 2> pricing_keys = {"rate_table", "reload"};
constexpr std::array<std::string_view, 2> reload_keys = {"watch", "poll_interval"};
constexpr std::array<std::string_view, 1> models_keys = {"mappings"};
constexpr std::array<std::string_view, 5> mapping_keys = {"arn", "base_model", "team", "app",
                                                          "hourly_usd"};
// Resource types of Bedrock ARNs that name something a mapping can give a meaning to.
constexpr std::array<std::string_view, 6> mappable_arn_types = {"application-inference-profile",
                                                                "provisioned-model",
                                                                "imported-model",
                                                                "custom-model",
                                                                "inference-profile",
                                                                "foundation-model"};

/// What is wrong with a mapping's `arn`, or empty: one ARN whose id carries no base model, or a
/// bare profile or provisioned-model id as some SDKs send it.
std::string arn_problem(const std::string& arn) {
  if (!arn.starts_with("arn:")) {
    const bool ok = std::all_of(arn.begin(), arn.end(), [](char c) {
      return is_lower(c) || is_upper(c) || is_digit(c) || c == '.' || c == '-' || c == ':' ||
             c == '_' || c == '/';
    });
    if (ok) return {};
    return "'" + arn + "' is neither an ARN nor a model id; write the full ARN, e.g. " +
           "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123";
  }
  // arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID
  std::vector<std::string_view> parts;
  std::string_view rest = arn;
  for (int i = 0; i < 5; ++i) {
    const std::size_t colon = rest.find(':');
    if (colon == std::string_view::npos) break;
    parts.push_back(rest.substr(0, colon));
    rest.remove_prefix(colon + 1);
  }
  parts.push_back(rest);
  const std::string fix =
      "; write arn:aws:bedrock:REGION:ACCOUNT:TYPE/ID, e.g. "
      "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123";
  if (parts.size() != 6 || !parts[1].starts_with("aws") || parts[2] != "bedrock") {
    return "'" + arn + "' is not a Bedrock ARN" + fix;
  }
  if (!is_valid_region(parts[3])) {
    return "'" + std::string(parts[3]) + "' in the ARN is not a region" + fix;
  }
  const std::size_t slash = parts[5].find('/');
  const std::string_view type = parts[5].substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 != parts[5].size() &&
      std::find(mappable_arn_types.begin(), mappable_arn_types.end(), type) !=
          mappable_arn_types.end()) {
    return {};
  }
  std::string msg = "'" + arn + "' has resource type '" + std::string(type) + "'";
  if (const auto near = closest_match(type, mappable_arn_types); !near.empty() && near != type) {
    msg += "; did you mean '" + std::string(near) + "'?";
  } else {
    msg += "; mappings take " + join(mappable_arn_types) + " ARNs ending in /ID";
  }
  return msg;
}

/// `arn`: well formed and not mapped twice.
bool load_arn(const map_reader& m, first_seen& seen, std::string& arn) {
  if (!m.read_string("arn", arn, text_rule::required)) return false;
  const map_entry& a = *m.get("arn");
  bool ok = true;
  if (auto problem = arn_problem(arn); !problem.empty()) {
    m.error(a, std::move(problem));
    ok = false;
  }
  if (const auto line = seen.earlier_line(arn, a.mark())) {
    m.error(a, "duplicate mapping for '" + arn + "' (already mapped on line " +
                   std::to_string(*line) + "); keep one");
    ok = false;
  }
  return ok;
}

/// `base_model`: a base model or inference-profile id; noted for the check against the table.
bool load_base_model(load_context& ctx, const map_reader& m, std::string& base_model) {
  if (!m.read_string("base_model", base_model, text_rule::required)) return false;
  const map_entry& b = *m.get("base_model");
  const auto resolved = metering::resolve_model(base_model);
  if (resolved.base_model.empty()) {
    m.error(b, "'" + base_model + "' is not a base model or inference-profile id; " +
                   "write e.g. anthropic.claude-3-5-sonnet-20240620-v1:0 or " +
                   "us.anthropic.claude-3-5-sonnet-20240620-v1:0");
    return false;
  }
  ctx.marks().mappings.push_back(
      {base_model, resolved.base_model, b.mark(), m.path_of("base_model")});
  return true;
}

/// The largest `hourly_usd`: far above any provisioned model's hourly price (a unit mistake).
constexpr std::int64_t max_hourly_usd = 1'000'000;

void load_mapping(load_context& ctx, const map_reader& m, first_seen& seen,
                  std::vector<metering::model_mapping>& out) {
  metering::model_mapping mapping;
  bool ok = load_arn(m, seen, mapping.arn);
  ok &= load_base_model(ctx, m, mapping.base_model);
  read_label(m, "team", mapping.team, text_rule::optional);
  read_label(m, "app", mapping.app, text_rule::optional);
  // Exact decimal text, like rate-table prices; at most 6 decimals.
  if (const auto micro = m.read_positive_decimal(
          "hourly_usd",
          "expected a positive USD amount per hour such as \"44.00\" (at most 6 decimals)",
          max_hourly_usd, "USD per hour")) {
    mapping.hourly_usd = static_cast<double>(*micro) / 1e6;
  } else {
    ok &= m.get("hourly_usd") == nullptr;
  }
  if (ok) out.push_back(std::move(mapping));
}

/// The table `rate_table` names, loaded now so a bad table fails the config (and check-config).
void load_rate_table(load_context& ctx, const map_entry& f, const std::string& path, config& cfg) {
  const std::string resolved = ctx.readable_file(f, "pricing.rate_table", path);
  if (resolved.empty()) return;
  cfg.pricing.rate_table = resolved;
  auto r = load_rate_table_file(resolved);
  if (!r.errors.empty()) {
    ctx.diag().error(f.mark(), "pricing.rate_table",
                     "rate table '" + resolved + "' has " + std::to_string(r.errors.size()) +
                         (r.errors.size() == 1 ? " error" : " errors") +
                         " (listed with its own file:line); fix the table or point at another "
                         "one");
  }
  ctx.diag().adopt(std::move(r.errors), std::move(r.warnings));
  cfg.rate_table = std::move(r.table);
}

}  // namespace

void load_pricing(load_context& ctx, const map_entry& e, config& cfg) {
  const map_reader s(ctx.diag(), e.value, "pricing", pricing_keys, e.mark());
  if (!s.is_map()) return;
  // No default: the shipped table is one choice among several (a synced or edited copy), and
  // pricing with a table nobody chose would look authoritative.
  if (std::string path; s.read_string("rate_table", path, text_rule::required)) {
    load_rate_table(ctx, *s.get("rate_table"), path, cfg);
  }
  if (const map_entry* r = s.get("reload"); r != nullptr && !r->value.IsNull()) {
    const map_reader rs(ctx.diag(), r->value, "pricing.reload", reload_keys, r->mark());
    if (rs.is_map()) {
      rs.read_bool("watch", cfg.pricing.reload.watch);
      rs.read_duration("poll_interval", cfg.pricing.reload.poll_interval, false,
                       std::chrono::hours(1));
    }
  }
}

void load_models(load_context& ctx, const map_entry& e, models_config& out) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "models", models_keys, e.mark());
  if (!s.is_map()) return;
  first_seen arns;
  s.for_each_map("mappings", mapping_keys, "mappings",
                 [&](const map_reader& m) { load_mapping(ctx, m, arns, out.mappings); });
}

}  // namespace bedrock_meter::config
