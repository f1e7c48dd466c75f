#pragma once
/// The proxy configuration: what `serve --config FILE` reads. An immutable snapshot once loaded;
/// the proxy holds it as `std::shared_ptr<const config>` (docs/architecture.md, "Snapshots"). Every
/// field is documented for users in docs/configuration.md.
///
/// Pure code: yaml-cpp for parsing, no sockets, no logging. Errors are values with file:line:col.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "metering/budget.hpp"
#include "metering/model_id.hpp"
#include "metering/rate_table.hpp"

namespace bedrock_meter::config {

using milliseconds = std::chrono::milliseconds;
/// The validated rate table a config names (config/rate_table_loader.hpp).
using rate_table_ptr = std::shared_ptr<const metering::rate_table>;

struct tls_files {
  std::string cert_file;  ///< PEM certificate chain
  std::string key_file;   ///< PEM private key
  bool operator==(const tls_files&) const = default;
};

/// One client-facing listener. Without `tls` it is plain HTTP (for loopback and development).
struct listener_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0 = pick a free port (tests); the bound port is logged
  std::optional<tls_files> tls;
  bool operator==(const listener_config&) const = default;
};

/// Where upstream credentials come from.
enum class credential_source : std::uint8_t {
  default_chain,  ///< env, shared files (AWS_PROFILE), container, IMDSv2 — AWS's order
  environment,    ///< only AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
  profile,        ///< only the shared credentials/config files, profile `profile`
  container,      ///< only the ECS/EKS container endpoint
  imds,           ///< only EC2 IMDSv2
  bearer,         ///< an upstream Bedrock API key read from the env var `bearer_token_env`
};

struct upstream_credentials {
  credential_source source = credential_source::default_chain;
  std::string profile;  ///< for `profile` (default: $AWS_PROFILE or "default")
  std::string bearer_token_env = "AWS_BEARER_TOKEN_BEDROCK";  ///< for `bearer`
  milliseconds refresh_before{std::chrono::minutes(5)};  ///< refresh temporary creds this early
  bool operator==(const upstream_credentials&) const = default;
};

struct upstream_config {
  std::string region = "us-east-1";
  /// Regions a client may choose by signing for them; the request then goes to that region.
  std::vector<std::string> allowed_client_regions;
  /// A request signed for a region that is neither `region` nor allowed: refused with 403
  /// (false, the default), or sent to `region` anyway (true: `unlisted_client_regions: reroute`).
  bool reroute_unlisted_client_regions = false;
  /// Endpoint override, e.g. `https://vpce-...` or `http://127.0.0.1:9000` (tests). Empty: AWS's
  /// `https://bedrock-runtime.{region}.amazonaws.com`. May contain `{region}`.
  std::string endpoint;
  std::string ca_file;  ///< extra trust anchor (PEM) in addition to the system store; empty = none
  bool verify_tls = true;
  upstream_credentials credentials;
  milliseconds connect_timeout{std::chrono::seconds(5)};
  milliseconds first_byte_timeout{std::chrono::seconds(60)};
  milliseconds idle_timeout{std::chrono::seconds(60)};  ///< max gap between body bytes
  std::uint32_t max_idle_connections = 64;              ///< per worker
  milliseconds pool_idle_time{std::chrono::seconds(50)};
  bool operator==(const upstream_config&) const = default;
};

/// What every identity (access key, bearer key, anonymous) may carry besides team and app.
struct identity_attributes {
  /// Free-form labels written to the ledger with each request (e.g. cost_center: CC-1234).
  /// Never Prometheus labels, so they may be as many and as varied as chargeback needs.
  std::map<std::string, std::string> tags;
  /// Base model ids this identity may call; empty = any. `*` at the end matches a prefix
  /// (`anthropic.claude-*`). Matched against the base model the request resolves to (after
  /// geo/global profile prefixes and models.mappings), and against the id as sent.
  std::vector<std::string> allowed_models;
  bool operator==(const identity_attributes&) const = default;
};

/// A proxy-issued SigV4 access key. The secret is needed in plaintext to verify HMACs (as AWS
/// itself does); give it inline or through an environment variable.
struct access_key {
  std::string access_key_id;
  std::string secret_access_key;  ///< resolved secret (from the file or `secret_env`)
  std::string secret_env;         ///< name of the env var holding the secret, if used
  std::string team;
  std::string app;
  identity_attributes attributes;
  bool operator==(const access_key&) const = default;
};

/// A proxy-issued bearer key, stored as the hex SHA-256 of the token.
struct bearer_key {
  std::string sha256;  ///< 64 lowercase hex chars
  std::string team;
  std::string app;
  std::string name;  ///< optional label for logs (never the token)
  identity_attributes attributes;
  bool operator==(const bearer_key&) const = default;
};

struct anonymous_identity {
  bool enabled = false;  ///< off by default; for local demos only
  std::string team = "anonymous";
  std::string app = "anonymous";
  identity_attributes attributes;
  bool operator==(const anonymous_identity&) const = default;
};

struct auth_config {
  std::vector<access_key> access_keys;
  std::vector<bearer_key> bearer_keys;
  anonymous_identity anonymous;
  std::chrono::seconds max_clock_skew{300};
  bool operator==(const auth_config&) const = default;
};

struct limits_config {
  std::uint32_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 32ull * 1024 * 1024;
  /// Open client connections per process; beyond it a new connection is answered 503
  /// ServiceUnavailableException and closed.
  std::uint32_t max_connections = 10'000;
  /// Open connections from one client address; beyond it a new connection from that address is
  /// answered 429 ThrottlingException and closed. 0: no per-client limit.
  std::uint32_t max_connections_per_client = 0;
  milliseconds header_timeout{std::chrono::seconds(10)};    ///< whole request head must arrive
  milliseconds body_timeout{std::chrono::seconds(60)};      ///< whole request body must arrive
  milliseconds idle_timeout{std::chrono::seconds(60)};      ///< keep-alive idle between requests
  milliseconds exchange_timeout{std::chrono::minutes(15)};  ///< cap on one request end to end
  milliseconds shutdown_grace{std::chrono::seconds(30)};    ///< SIGTERM: in-flight may finish
  bool operator==(const limits_config&) const = default;
};

/// HTTP/2 session limits and abuse defences (each trip is counted, never fatal to the process).
struct http2_config {
  std::uint32_t max_concurrent_streams = 100;       ///< SETTINGS_MAX_CONCURRENT_STREAMS
  std::uint32_t max_header_list_bytes = 16 * 1024;  ///< SETTINGS_MAX_HEADER_LIST_SIZE, enforced
  std::uint32_t max_resets_per_window = 200;  ///< client RST_STREAMs (rapid reset, CVE-2023-44487)
  std::uint32_t max_settings_per_window = 100;  ///< SETTINGS frames
  std::uint32_t max_pings_per_window = 100;     ///< PING frames
  std::uint32_t max_empty_frames_per_window =
      100;  ///< DATA/HEADERS frames with no payload, no END_STREAM
  milliseconds flood_window{std::chrono::seconds(1)};
  bool operator==(const http2_config&) const = default;
};

struct logging_config {
  std::string level = "info";         ///< trace, debug, info, warn, error, off
  std::string access_log = "stdout";  ///< "stdout", "off", or a file path
  bool operator==(const logging_config&) const = default;
};

struct admin_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 9464;
  bool enabled = true;
  std::string token_env;  ///< if set, admin endpoints require `Authorization: Bearer $TOKEN`
  bool operator==(const admin_config&) const = default;
};

/// When the rate table is re-read without a restart (SIGHUP and the admin endpoint always work).
struct rate_table_reload {
  bool watch = true;                                    ///< poll the file for changes
  milliseconds poll_interval{std::chrono::seconds(2)};  ///< how often the file is checked
  bool operator==(const rate_table_reload&) const = default;
};

struct pricing_config {
  /// Absolute path of the rate-table file (docs/pricing.md). Empty: no `pricing` section, so
  /// every request is unpriced (the loader warns).
  std::string rate_table;
  rate_table_reload reload;
  bool operator==(const pricing_config&) const = default;
};

/// Application inference profiles, provisioned and imported models: what their ARNs mean.
struct models_config {
  std::vector<metering::model_mapping> mappings;  ///< ARNs unique; order as in the file
  /// Field-wise (metering::model_mapping has no operator==).
  bool operator==(const models_config& other) const;
};

/// The durable ledger (SQLite; accounting/ledger.hpp). Defaults match `accounting::ledger_options`.
/// Where the fleet's rows go besides the local file (docs/ledger.md).
enum class ledger_store_kind : std::uint8_t { sqlite, postgres };

/// `ledger.postgres`: the fleet's shared ledger. The local SQLite file stays the journal (and the
/// spool while PostgreSQL is away); a shipper thread copies its rows over in order.
struct ledger_postgres_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5432;
  std::string database = "bedrock_meter";
  std::string user = "bedrock_meter";
  std::string password_env;        ///< env var holding the password; empty = none (trust, .pgpass)
  std::string password;            ///< resolved from password_env; never logged
  std::string sslmode = "prefer";  ///< libpq's: disable allow prefer require verify-ca verify-full
  std::string sslrootcert;         ///< CA file for verify-ca / verify-full (e.g. the RDS bundle)
  std::string replica;             ///< this replica's name in the rows; empty = the host name
  std::uint32_t batch_max = 2000;  ///< most rows per insert
  milliseconds connect_timeout{std::chrono::seconds(5)};
  /// Rows in the local journal not yet in PostgreSQL beyond which new requests are refused
  /// (503): the spool's bound.
  std::uint64_t spool_max_rows = 1'000'000;
  bool operator==(const ledger_postgres_config&) const = default;
};

struct ledger_config {
  std::string path;  ///< absolute path of the database file; empty = no ledger (the loader warns)
  ledger_store_kind store = ledger_store_kind::sqlite;
  ledger_postgres_config postgres;
  std::uint32_t queue_capacity = 65536;  ///< records in memory, not yet committed
  std::uint32_t batch_max = 512;         ///< most records per transaction
  milliseconds flush_interval{50};       ///< longest a record waits before its group commits
  /// Keyed fingerprints of each request's cacheable prompt prefixes, for the advisor
  /// (docs/finops.md). Never any prompt text.
  bool prompt_fingerprints = true;
  /// The installation's secret fingerprint key (created on first start, mode 0600); empty =
  /// `<path>.key`. Read once at start: a reload does not change the key.
  std::string fingerprint_key_file;
  bool operator==(const ledger_config&) const = default;
};

/// What happens to a streamed answer whose client went away before its usage event.
struct metering_config {
  bool drain_on_client_abort = true;  ///< keep reading upstream for the exact token counts
  milliseconds drain_timeout{std::chrono::seconds(30)};  ///< then estimate
  std::uint32_t max_concurrent_drains = 256;             ///< beyond it, estimate at once
  bool operator==(const metering_config&) const = default;
};

/// The FinOps advisor's background run behind the savings gauges and GET /api/advice
/// (docs/finops.md).
struct advice_config {
  milliseconds window{std::chrono::hours(24 * 30)};         ///< how far back each run looks
  milliseconds refresh_interval{std::chrono::minutes(15)};  ///< 0 = no background run
  bool operator==(const advice_config&) const = default;
};

/// Where budget accumulators live (docs/budgets.md).
enum class budget_store_kind : std::uint8_t {
  local,  ///< in this process, restored from the ledger at start
  redis,  ///< shared by every replica pointing at the same Redis
};
/// What admission does when the shared store cannot be reached.
enum class budget_store_fallback : std::uint8_t {
  open,    ///< admit, count locally, count and log the failure
  closed,  ///< refuse requests in the scope of a block budget (503, retryable)
};

struct budget_redis_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string unix_socket;   ///< wins over host/port when set
  std::string password_env;  ///< env var holding the password (AUTH); empty = none
  std::string password;      ///< resolved from password_env; never logged
  std::uint32_t db = 0;
  milliseconds timeout{50};  ///< per command; a dead Redis costs this, once a second per worker
  std::string key_prefix = "bedrock-meter";
  bool operator==(const budget_redis_config&) const = default;
};

struct budget_entry {
  metering::budget_def def;
  std::string time_zone;  ///< IANA name; the budgets section's default when not given
  bool operator==(const budget_entry&) const = default;
};

struct budgets_config {
  std::string time_zone = "UTC";  ///< default zone for period boundaries
  budget_store_kind store = budget_store_kind::local;
  budget_redis_config redis;
  budget_store_fallback on_store_unavailable = budget_store_fallback::open;
  /// Worst-case output when a request gives no max_tokens and the model has no entry below.
  std::uint64_t default_max_output_tokens = 8192;
  /// Per base model output cap, for requests without max_tokens (and to cap those with).
  std::map<std::string, std::uint64_t> max_output_tokens;
  std::vector<budget_entry> definitions;  ///< names unique
  bool operator==(const budgets_config&) const = default;
};

/// An Enterprise Discount Program (or private pricing) contract, as far as Bedrock spend is
/// concerned (docs/finops.md, "Commitments"). EDP terms are private: everything here is what the
/// contract says, entered by hand.
struct commitment_config {
  std::string name;
  std::chrono::year_month_day start{};  ///< first day of the term (UTC)
  std::chrono::year_month_day end{};    ///< first day after the term; contract years from start
  std::int64_t per_year_micro_usd = 0;  ///< the spend committed per contract year, micro-USD
  std::int64_t discount_ppm = 0;        ///< discount on eligible spend, parts per million
  /// Whether Marketplace-billed models (Claude, Cohere, AI21, ...) get the discount: sources
  /// and contracts differ ("generally not EDP-eligible" vs eligible).
  bool marketplace_discounted = false;
  /// The share of Marketplace spend that counts toward the commitment: sources say "up to 25%"
  /// and "100%"; the contract decides.
  std::int64_t marketplace_counts_ppm = 250'000;
  /// Eligible spend outside Bedrock per contract year (the proxy cannot see it), micro-USD.
  std::int64_t other_spend_per_year_micro_usd = 0;
  /// Model-id providers billed through AWS Marketplace (text before the first '.').
  std::vector<std::string> marketplace_providers{"anthropic", "cohere",     "ai21", "writer",
                                                 "stability", "twelvelabs", "luma"};
  bool operator==(const commitment_config&) const = default;
};

/// Whether `model_base` is billed through AWS Marketplace under `c`: its provider (the text
/// before the first '.') is one of `c.marketplace_providers`.
bool is_marketplace(const commitment_config& c, std::string_view model_base);

/// The discount, in parts per million, that `model_base`'s spend on `day` (UTC) gets: that of the
/// first commitment whose term covers the day (Marketplace-billed models only when it discounts
/// them), 0 outside every term. What the net figures (`--net`, `?basis=net`,
/// bedrock_net_spend_usd_total) apply.
std::int64_t discount_ppm_on(const std::vector<commitment_config>& commitments,
                             std::string_view model_base, std::chrono::sys_days day);

struct config {
  std::string source_path;  ///< the file it was read from
  std::vector<listener_config> listeners;
  unsigned workers = 0;  ///< 0 = number of cores
  /// After handling an event, a worker keeps polling this long before it sleeps (0 = off).
  unsigned busy_poll_us = 0;
  upstream_config upstream;
  auth_config auth;
  limits_config limits;
  http2_config http2;
  logging_config logging;
  admin_config admin;
  pricing_config pricing;
  models_config models;
  ledger_config ledger;
  metering_config metering;
  advice_config advice;
  budgets_config budgets;
  std::vector<commitment_config> commitments;  ///< names unique
  /// The table `pricing.rate_table` names, loaded and validated with the config (so
  /// `check-config` checks it too); null without a `pricing` section. Compared by identity.
  rate_table_ptr rate_table;
  /// Field-wise, so a reload can tell an unchanged file apart and tests can compare snapshots.
  bool operator==(const config&) const = default;
};

/// A validation or parse problem, with where it is.
struct config_error {
  std::string file;
  int line = 0;                   ///< 1-based; 0 when not known
  int column = 0;                 ///< 1-based
  std::string path;               ///< YAML path, e.g. `auth.access_keys[1].team`
  std::string message;            ///< what is wrong and how to fix it
  std::string to_string() const;  ///< "file:line:col: path: message"
};

struct load_result {
  std::optional<config> value;       ///< set when there are no errors
  std::vector<config_error> errors;  ///< all problems found, not just the first; sorted by position
  /// Legal but risky settings (anonymous access on, upstream TLS not verified, plain HTTP on a
  /// non-loopback address, no client identities). Never block loading; `main` logs them.
  std::vector<config_error> warnings;
};

/// Reads, parses and validates a config file. `getenv` resolves `*_env` fields (injected for
/// tests; pass nullptr for the process environment). Relative paths in the file (`tls.cert_file`,
/// `tls.key_file`, `upstream.ca_file`, `logging.access_log`) are resolved against the directory of
/// `path` and stored absolute. Never throws; I/O is limited to reading `path` and checking that the
/// referenced files are readable.
using env_lookup = const char* (*)(const char*);
load_result load_file(const std::string& path, env_lookup getenv = nullptr);
/// Same, from text. `file_name` is used in messages and its directory (the current directory
/// when it has none) anchors relative paths, as if the text had been read from that file.
load_result load_string(std::string_view yaml, std::string_view file_name,
                        env_lookup getenv = nullptr);

/// `250ms`, `5s`, `15m`, `1h`, or combined (`1m30s`). Whole numbers only; a bare number has no
/// unit and is rejected. Empty optional when malformed or beyond 168h.
std::optional<milliseconds> parse_duration(std::string_view text);
/// A byte count: a plain integer, or with `B`, `KiB`, `MiB`, `GiB` (powers of 1024).
std::optional<std::uint64_t> parse_size(std::string_view text);
/// An AWS region name: `^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$` (`us-east-1`, `us-gov-west-1`,
/// `us-isob-east-1`). Cheap enough for the request path (no std::regex).
bool is_valid_region(std::string_view region);
/// `[A-Za-z0-9_.-]{1,64}`: what `team` and `app` may be, as they become Prometheus label values.
bool is_valid_label_value(std::string_view value);
/// The closest of `candidates` to `word` for a "did you mean" hint (within two edits, a
/// transposition counting as one), or empty when nothing is close.
std::string_view closest_match(std::string_view word, std::span<const std::string_view> candidates);
/// The YAML spelling of a credential source (`default_chain`, `environment`, ...).
std::string_view to_string(credential_source source);
std::optional<credential_source> parse_credential_source(std::string_view text);

}  // namespace bedrock_meter::config
