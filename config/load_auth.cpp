// The `auth` section: who may call the proxy (proxy-issued SigV4 access keys, bearer keys, or
// anonymous) and what each identity carries (team, app, tags, allowed models).
#include "config/loader.hpp"

#include <algorithm>

#include "config/text.hpp"

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 4> auth_keys = {"access_keys", "bearer_keys", "anonymous",
                                                       "max_clock_skew"};
constexpr std::array<std::string_view, 7> access_key_keys = {
    "access_key_id", "secret_access_key", "secret_env", "team", "app", "tags", "allowed_models"};
constexpr std::array<std::string_view, 6> bearer_key_keys = {"sha256", "team", "app",
                                                             "name",   "tags", "allowed_models"};
constexpr std::array<std::string_view, 5> anonymous_keys = {"enabled", "team", "app", "tags",
                                                            "allowed_models"};

bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_hex(char c) { return is_lower_hex(c) || (c >= 'A' && c <= 'F'); }

/// `tags`: free-form labels for the ledger, a map of names to strings.
void load_tags(const map_reader& s, std::map<std::string, std::string>& out) {
  const std::string path = s.path_of("tags");
  const auto tag = [&](const YAML::Node& key_node, const YAML::Node& value) {
    const std::string key = key_node.IsScalar() ? key_node.Scalar() : std::string();
    if (!is_valid_label_value(key)) {
      s.diag().error(key_node.Mark(), path,
                     "'" + key + "' is not a valid tag name; " + std::string(label_hint));
    } else if (!value.IsScalar()) {
      s.diag().error(value.Mark(), child_path(path, key), "a tag value must be a string");
    } else if (value.Scalar().size() > 256) {
      s.diag().error(value.Mark(), child_path(path, key), "a tag value is at most 256 characters");
    } else {
      out[key] = value.Scalar();
    }
  };
  s.for_each_pair("tags", "tags such as {cost_center: CC-1234}", tag);
}

/// `tags` and `allowed_models` (a list of model ids, `*` at the end = prefix).
void load_attributes(const map_reader& s, identity_attributes& out) {
  load_tags(s, out.tags);
  s.for_each_item(
      "allowed_models",
      "model ids, e.g. [anthropic.claude-3-5-haiku-20241022-v1:0, \"amazon.nova-*\"]",
      [&](const YAML::Node& item, const std::string& path) {
        const std::string v = item.IsScalar() ? item.Scalar() : std::string();
        const auto star = v.find('*');
        if (v.empty() || (star != std::string::npos && star + 1 != v.size())) {
          s.diag().error(
              item.Mark(), path,
              "'" + v +
                  "' is not a model id or prefix; write e.g. "
                  "anthropic.claude-3-5-haiku-20241022-v1:0 or anthropic.claude-* ('*' only "
                  "at the end)");
          return;
        }
        out.allowed_models.push_back(v);
      });
}

/// The secret of an access key: inline, or from the environment variable `secret_env`.
void load_secret(const load_context& ctx, const map_reader& s, access_key& k) {
  const map_entry* inline_secret = s.get("secret_access_key");
  const map_entry* env_secret = s.get("secret_env");
  if (inline_secret != nullptr && env_secret != nullptr) {
    s.error(*env_secret, "give either 'secret_access_key' or 'secret_env', not both");
  } else if (inline_secret == nullptr && env_secret == nullptr) {
    ctx.diag().error(
        s.mark(), s.path_of("secret_access_key"),
        "missing the secret; add 'secret_access_key: ...' or 'secret_env: VARIABLE_NAME'");
  } else if (inline_secret != nullptr) {
    s.read_string("secret_access_key", k.secret_access_key, text_rule::required);
  } else if (read_env_name(s, "secret_env", k.secret_env, text_rule::required)) {
    ctx.require_env_set(*env_secret, s.path_of("secret_env"), k.secret_env,
                        "it holds the secret for this access key; or put the secret inline in "
                        "secret_access_key");
    if (const auto v = ctx.env(k.secret_env)) k.secret_access_key = *v;
  }
}

void load_access_key(const load_context& ctx, const map_reader& s, first_seen& seen,
                     std::vector<access_key>& out) {
  access_key k;
  if (s.read_string("access_key_id", k.access_key_id, text_rule::required)) {
    const map_entry& id = *s.get("access_key_id");
    const bool format_ok = k.access_key_id.size() >= 16 && k.access_key_id.size() <= 128 &&
                           std::all_of(k.access_key_id.begin(), k.access_key_id.end(),
                                       [](char c) { return is_upper(c) || is_digit(c); });
    if (!format_ok) {
      s.error(id, "'" + k.access_key_id + "' is not a valid access key id; use 16 to 128 " +
                      "characters from A-Z and 0-9 (e.g. BMAKSEARCH0000000001)");
    } else if (const auto line = seen.earlier_line(k.access_key_id, id.mark())) {
      s.error(id, "duplicate access key id '" + k.access_key_id + "' (already defined on line " +
                      std::to_string(*line) + "); each key needs its own id");
    }
  }
  load_secret(ctx, s, k);
  read_label(s, "team", k.team, text_rule::required);
  read_label(s, "app", k.app, text_rule::required);
  load_attributes(s, k.attributes);
  out.push_back(std::move(k));
}

void load_bearer_key(const map_reader& s, first_seen& seen, std::vector<bearer_key>& out) {
  bearer_key k;
  if (s.read_string("sha256", k.sha256, text_rule::required)) {
    const map_entry& h = *s.get("sha256");
    const bool sized = k.sha256.size() == 64;
    if (!sized || !std::all_of(k.sha256.begin(), k.sha256.end(), is_lower_hex)) {
      const bool upper = sized && std::all_of(k.sha256.begin(), k.sha256.end(), is_hex);
      s.error(h, upper ? std::string("use lowercase hex digits")
                       : "not a SHA-256 hash: expected 64 lowercase hex characters (got " +
                             std::to_string(k.sha256.size()) +
                             "); compute it with: printf %s \"$TOKEN\" | sha256sum");
    } else if (const auto line = seen.earlier_line(k.sha256, h.mark())) {
      s.error(h, "duplicate bearer key hash (already defined on line " + std::to_string(*line) +
                     "); each token must be distinct");
    }
  }
  read_label(s, "team", k.team, text_rule::required);
  read_label(s, "app", k.app, text_rule::required);
  read_label(s, "name", k.name, text_rule::optional);
  load_attributes(s, k.attributes);
  out.push_back(std::move(k));
}

void load_anonymous(const load_context& ctx, const map_entry& e, anonymous_identity& a) {
  const map_reader s(ctx.diag(), e.value, "auth.anonymous", anonymous_keys, e.mark());
  if (!s.is_map()) return;
  s.read_bool("enabled", a.enabled);
  read_label(s, "team", a.team, text_rule::optional);
  read_label(s, "app", a.app, text_rule::optional);
  load_attributes(s, a.attributes);
  if (a.enabled) {
    ctx.diag().warn(s.get("enabled")->mark(), "auth.anonymous.enabled",
                    "anonymous access is on: unauthenticated requests are forwarded and billed "
                    "to " +
                        a.team + "/" + a.app);
  }
}

}  // namespace

void load_auth(load_context& ctx, const map_entry& e, auth_config& a) {
  if (e.value.IsNull()) return;
  const map_reader s(ctx.diag(), e.value, "auth", auth_keys, e.mark());
  if (!s.is_map()) return;
  first_seen access_key_ids;
  s.for_each_map("access_keys", access_key_keys, "access keys", [&](const map_reader& k) {
    load_access_key(ctx, k, access_key_ids, a.access_keys);
  });
  first_seen bearer_hashes;
  s.for_each_map("bearer_keys", bearer_key_keys, "bearer keys",
                 [&](const map_reader& k) { load_bearer_key(k, bearer_hashes, a.bearer_keys); });
  if (const map_entry* an = s.get("anonymous"); an != nullptr && !an->value.IsNull()) {
    load_anonymous(ctx, *an, a.anonymous);
  }
  s.read_duration("max_clock_skew", a.max_clock_skew, false, std::chrono::hours(1));
}

}  // namespace bedrock_meter::config
