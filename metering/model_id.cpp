#include "metering/model_id.hpp"

#include <algorithm>
#include <array>

namespace bedrock_meter::metering {
namespace {

/// Prefixes of Bedrock's system-defined cross-region inference profiles (AWS "Supported Regions and
/// models for inference profiles"). `global` is the global scope; the rest are geographies.
constexpr std::array<std::string_view, 8> profile_prefixes{"us", "eu", "apac",   "jp",
                                                           "au", "ca", "us-gov", "global"};

/// Providers as they appear as the first segment of a base model id. Only used to recognise a
/// geography prefix that is not (yet) in `profile_prefixes`; an unlisted provider is still a base
/// id, it just cannot make an unknown prefix recognisable.
constexpr std::array<std::string_view, 20> providers{
    "ai21", "amazon",    "anthropic",  "cohere",   "deepseek",   "google", "luma",
    "meta", "minimax",   "mistral",    "moonshot", "moonshotai", "nvidia", "openai",
    "qwen", "stability", "twelvelabs", "writer",   "xai",        "zai"};

bool contains(const auto& list, std::string_view v) noexcept {
  return std::find(list.begin(), list.end(), v) != list.end();
}

bool is_lower_alnum_dash(std::string_view s) noexcept {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

/// `provider.rest`: provider [a-z0-9-]+, rest non-empty of [A-Za-z0-9._:-]. Bedrock's own ids
/// never contain '/', spaces or other punctuation; anything else is not a model id at all.
bool is_base_id(std::string_view id) noexcept {
  const std::size_t dot = id.find('.');
  if (dot == std::string_view::npos || dot + 1 >= id.size()) return false;
  if (!is_lower_alnum_dash(id.substr(0, dot))) return false;
  const std::string_view rest = id.substr(dot + 1);
  return std::all_of(rest.begin(), rest.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == ':';
  });
}

/// A bare id (no ARN): base or profile. Fills base_model/scope/geo; returns false if not a model
/// id.
bool resolve_bare(std::string_view id, resolved_model_view& out) noexcept {
  const std::size_t dot = id.find('.');
  if (dot != std::string_view::npos) {
    const std::string_view prefix = id.substr(0, dot);
    const std::string_view rest = id.substr(dot + 1);
    bool profile = contains(profile_prefixes, prefix);
    if (!profile && !contains(providers, prefix) && is_lower_alnum_dash(prefix)) {
      // An unlisted prefix counts when a known provider follows it (a new AWS geography).
      const std::size_t next = rest.find('.');
      profile = next != std::string_view::npos && contains(providers, rest.substr(0, next));
    }
    if (profile) {
      if (!is_base_id(rest)) return false;
      out.base_model = rest;
      out.geo = prefix;
      out.scope = prefix == "global" ? inference_scope::global : inference_scope::geo;
      return true;
    }
  }
  if (!is_base_id(id)) return false;
  out.base_model = id;
  out.scope = inference_scope::in_region;
  out.geo = {};
  return true;
}

struct arn_parts {
  std::string_view region;
  std::string_view type;
  std::string_view id;  ///< everything after `TYPE/`
};

/// arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID. The id may contain ':' (`v1:0`) and, for custom
/// models, '/'.
bool split_arn(std::string_view arn, arn_parts& out) noexcept {
  if (!arn.starts_with("arn:")) return false;
  arn.remove_prefix(4);
  std::array<std::string_view, 4> fields{};  // partition, service, region, account
  for (std::string_view& f : fields) {
    const std::size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return false;
    f = arn.substr(0, colon);
    arn.remove_prefix(colon + 1);
  }
  // aws, aws-us-gov, aws-cn (and the isolated partitions, which all start with "aws").
  if (!fields[0].starts_with("aws") || fields[1] != "bedrock") return false;
  const std::size_t slash = arn.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= arn.size()) return false;
  out.region = fields[2];
  out.type = arn.substr(0, slash);
  out.id = arn.substr(slash + 1);
  return true;
}

/// Id kinds that name no base model: a mapping may match them by their trailing id alone.
bool is_opaque(model_id_kind k) noexcept {
  return k != model_id_kind::base && k != model_id_kind::inference_profile &&
         k != model_id_kind::foundation_model_arn;
}

const model_mapping* find_mapping(std::string_view model_id, std::string_view trailing_id,
                                  const std::vector<model_mapping>& mappings) noexcept {
  for (const model_mapping& m : mappings) {
    if (m.arn == model_id) return &m;
  }
  if (trailing_id.empty()) return nullptr;
  for (const model_mapping& m : mappings) {
    if (m.arn == trailing_id) return &m;
  }
  return nullptr;
}

const std::vector<model_mapping>& no_mappings() noexcept {
  static const std::vector<model_mapping> empty;
  return empty;
}

/// Sets what is priced: the base model, its scope and geography.
inline void set_base(resolved_model_view& out, std::string_view base_model, inference_scope scope,
                     std::string_view geo) noexcept {
  out.base_model = base_model;
  out.scope = scope;
  out.geo = geo;
}

/// The kind of an ARN resource type whose id names no base model; unknown for any other type.
model_id_kind opaque_arn_kind(std::string_view type) noexcept {
  if (type == "application-inference-profile") return model_id_kind::application_profile;
  if (type == "provisioned-model") return model_id_kind::provisioned;
  if (type == "imported-model") return model_id_kind::imported;
  if (type == "custom-model") return model_id_kind::custom;
  return model_id_kind::unknown;
}

/// An ARN: fills kind, arn_region and, for foundation models and inference profiles, what is
/// priced. Returns the trailing resource id of an ARN that names no base model (for mapping by
/// id alone); empty otherwise.
std::string_view resolve_arn(std::string_view model_id, resolved_model_view& out) noexcept {
  arn_parts arn;
  if (!split_arn(model_id, arn)) return {};
  out.arn_region = arn.region;
  if (arn.type == "foundation-model") {
    // Foundation-model ARNs name the base model itself; no profile prefix is meaningful.
    if (is_base_id(arn.id)) {
      out.kind = model_id_kind::foundation_model_arn;
      out.base_model = arn.id;
    }
    return {};
  }
  if (arn.type == "inference-profile") {
    resolved_model_view bare;
    if (resolve_bare(arn.id, bare)) {
      out.kind = model_id_kind::inference_profile;
      set_base(out, bare.base_model, bare.scope, bare.geo);
    }
    return {};
  }
  out.kind = opaque_arn_kind(arn.type);
  return arn.id;
}

/// Prices a mapped id as the mapping's base model. That may carry a geo/global prefix (or be a
/// foundation-model ARN): it is resolved once, without mappings, so this never recurses further.
void apply_mapping(const model_mapping& m, resolved_model_view& out) noexcept {
  out.mapping = &m;
  const resolved_model_view mapped = resolve_model_view(m.base_model, no_mappings());
  if (!mapped.base_model.empty()) {
    set_base(out, mapped.base_model, mapped.scope, mapped.geo);
  } else {
    // Not a model id we can parse: keep the configured string; the rate table decides.
    set_base(out, m.base_model, inference_scope::in_region, {});
  }
}

}  // namespace

std::string_view to_string(inference_scope s) noexcept {
  switch (s) {
    case inference_scope::in_region: return "in_region";
    case inference_scope::geo: return "geo";
    case inference_scope::global: return "global";
  }
  return "in_region";
}

std::string_view to_string(model_id_kind k) noexcept {
  switch (k) {
    case model_id_kind::base: return "base";
    case model_id_kind::inference_profile: return "inference_profile";
    case model_id_kind::foundation_model_arn: return "foundation_model_arn";
    case model_id_kind::application_profile: return "application_profile";
    case model_id_kind::provisioned: return "provisioned";
    case model_id_kind::imported: return "imported";
    case model_id_kind::custom: return "custom";
    case model_id_kind::unknown: return "unknown";
  }
  return "unknown";
}

bool is_known_profile_prefix(std::string_view prefix) noexcept {
  return contains(profile_prefixes, prefix);
}

resolved_model_view resolve_model_view(std::string_view model_id,
                                       const std::vector<model_mapping>& mappings) noexcept {
  resolved_model_view out;
  std::string_view trailing_id;  // the resource id of an opaque ARN, for mapping by id alone
  if (model_id.starts_with("arn:")) {
    trailing_id = resolve_arn(model_id, out);
  } else if (resolve_bare(model_id, out)) {
    out.kind = out.scope == inference_scope::in_region ? model_id_kind::base
                                                       : model_id_kind::inference_profile;
  }

  if (!mappings.empty()) {
    const model_mapping* m =
        find_mapping(model_id, is_opaque(out.kind) ? trailing_id : std::string_view{}, mappings);
    if (m != nullptr) apply_mapping(*m, out);
  }
  if (out.mapping == nullptr && is_opaque(out.kind)) {
    // No base model without a mapping (a custom-model ARN's middle segment is its *source*
    // model, but custom models are not billed at its on-demand rates).
    set_base(out, {}, inference_scope::in_region, {});
  }
  return out;
}

resolved_model resolve_model(std::string_view model_id,
                             const std::vector<model_mapping>& mappings) {
  const resolved_model_view v = resolve_model_view(model_id, mappings);
  resolved_model out;
  out.kind = v.kind;
  out.base_model = v.base_model;
  out.scope = v.scope;
  out.geo = v.geo;
  out.arn_region = v.arn_region;
  out.mapping = v.mapping;
  return out;
}

model_candidates base_model_candidate_views(std::string_view base_model) noexcept {
  model_candidates c;
  if (base_model.empty()) return c;
  const auto add = [&c](std::string_view id) {
    if (id.empty()) return;
    for (std::size_t i = 0; i < c.count; ++i) {
      if (c.ids[i] == id) return;
    }
    c.ids[c.count++] = id;
  };
  add(base_model);
  const std::size_t first = base_model.find(':');
  if (first != std::string_view::npos) {
    const std::size_t second = base_model.find(':', first + 1);
    if (second != std::string_view::npos) add(base_model.substr(0, second));  // drop `:200k`
    add(base_model.substr(0, first));                                         // drop `:0`
  }
  return c;
}

std::vector<std::string> base_model_candidates(std::string_view base_model) {
  const model_candidates c = base_model_candidate_views(base_model);
  std::vector<std::string> out;
  out.reserve(c.count);
  for (std::size_t i = 0; i < c.count; ++i) out.emplace_back(c.ids[i]);
  return out;
}

}  // namespace bedrock_meter::metering
