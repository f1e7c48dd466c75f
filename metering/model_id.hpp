#pragma once
/// Model-id resolution: what the client asked for (a base model id, an inference-profile id with
/// a geographic or global prefix, or an ARN in either percent-encoding, already decoded by
/// parse_route) -> the base model to price and the inference scope. Application inference
/// profiles, provisioned models and imported models carry no base model in their id; config maps
/// them (`model_mapping`). Pure code.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bedrock_meter::metering {

/// How the request is routed inside Bedrock: the pricing dimension "inference scope".
enum class inference_scope : std::uint8_t {
  in_region,  ///< a base model id or foundation-model ARN
  geo,        ///< a geographic cross-region profile: us., eu., apac., jp., au., us-gov., ca., ...
  global,     ///< global. cross-region profile
};
std::string_view to_string(inference_scope s) noexcept;

enum class model_id_kind : std::uint8_t {
  base,                  ///< anthropic.claude-3-5-sonnet-20240620-v1:0
  inference_profile,     ///< us.anthropic... or arn:...:inference-profile/us.anthropic...
  foundation_model_arn,  ///< arn:aws:bedrock:REGION::foundation-model/anthropic...
  application_profile,   ///< arn:...:application-inference-profile/ID (needs a mapping)
  provisioned,           ///< arn:...:provisioned-model/ID (needs a mapping)
  imported,              ///< arn:...:imported-model/ID (needs a mapping)
  custom,                ///< arn:...:custom-model/... (needs a mapping)
  unknown,               ///< anything else (an ARN of another type, garbage)
};
std::string_view to_string(model_id_kind k) noexcept;

/// Config-provided meaning of an ARN whose id does not name a base model.
///
/// Matching (first that applies): `arn` equal to the whole requested id (any kind of id: config is
/// explicit and wins), then, for ARNs whose id names no base model (application-inference-profile,
/// provisioned-model, imported-model, custom-model and unknown ARN types), `arn` equal to the
/// trailing resource id alone (`arn:...:application-inference-profile/abc123` matches `abc123`).
/// Among equal matches the first mapping in the vector wins.
struct model_mapping {
  std::string arn;         ///< exact ARN (decoded), or a bare profile/model id
  std::string base_model;  ///< base model id to price with (may itself carry a geo/global prefix)
  std::optional<double> hourly_usd;  ///< provisioned throughput: billed by the hour, not per token
  /// Optional attribution carried by the profile: when set, requests through this id are billed
  /// to this team / app instead of the caller's own (a profile is often made for one team).
  std::string team;
  std::string app;
};

/// The geographic and global prefixes Bedrock's system-defined inference profiles use:
/// us, eu, apac, jp, au, ca, us-gov, global. A one-segment prefix not on this list still counts as
/// geographic when the next segment is a known provider (`xx.anthropic.claude...`), so a new AWS
/// geography is priced by its base model instead of becoming unknown. Base ids may contain more
/// than one dot (`deepseek.v3.2`, `openai.gpt-5.4`), so dots alone do not make a prefix.
bool is_known_profile_prefix(std::string_view prefix) noexcept;

struct resolved_model {
  model_id_kind kind = model_id_kind::unknown;
  std::string base_model;  ///< e.g. "anthropic.claude-3-5-sonnet-20240620-v1:0"; empty if unknown
  inference_scope scope = inference_scope::in_region;
  std::string geo;                         ///< "us", "eu", "apac", "global", ... ("" for in-region)
  std::string arn_region;                  ///< region inside an ARN, if any
  const model_mapping* mapping = nullptr;  ///< the config mapping used, if any
};

/// Resolves a decoded model id. `mappings` may be empty. Never fails: unknown ids come back with
/// kind unknown (or application_profile etc. without a mapping) and an empty base_model.
///
/// Forms: a base id (`provider.model[:N[:ctx]]`); `PREFIX.provider.model...` (scope geo, or global
/// for `global.`); `arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID` for any partition `aws*`
/// (`aws`, `aws-us-gov`, `aws-cn`) with TYPE foundation-model, inference-profile,
/// application-inference-profile, provisioned-model, imported-model or custom-model. A mapping's
/// base_model is itself resolved once (without mappings), so `us.anthropic...` there yields scope
/// geo; the kind, arn_region and mapping stay those of the requested id.
resolved_model resolve_model(std::string_view model_id,
                             const std::vector<model_mapping>& mappings = {});

/// `resolved_model` as views into `model_id` and the mappings: the same rules, no allocation.
/// Valid while both are alive. The pricer's hot path uses this.
struct resolved_model_view {
  model_id_kind kind = model_id_kind::unknown;
  std::string_view base_model;
  inference_scope scope = inference_scope::in_region;
  std::string_view geo;
  std::string_view arn_region;
  const model_mapping* mapping = nullptr;
};
resolved_model_view resolve_model_view(std::string_view model_id,
                                       const std::vector<model_mapping>& mappings = {}) noexcept;

/// Candidate base ids to look up in the rate table, most specific first: the id itself, then
/// without a context-window suffix (`...v1:0:200k` -> `...v1:0`), then without the `:N` version
/// suffix (`...v1:0` -> `...v1`). No duplicates; empty input gives no candidates.
std::vector<std::string> base_model_candidates(std::string_view base_model);

/// The same candidates as views into `base_model` (at most 3, `count` used), no allocation.
struct model_candidates {
  std::array<std::string_view, 3> ids{};
  std::size_t count = 0;
};
model_candidates base_model_candidate_views(std::string_view base_model) noexcept;

}  // namespace bedrock_meter::metering
