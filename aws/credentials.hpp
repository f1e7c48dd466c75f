#pragma once
// Upstream AWS credentials: where the proxy finds the keys it signs Bedrock requests with, and the
// provider that keeps them fresh.
//
// Sources follow AWS's default chain (botocore / AWS CLI semantics), see docs/credentials.md:
//   1. environment  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (or the legacy
//                   AWS_SECURITY_TOKEN), optional AWS_CREDENTIAL_EXPIRATION
//   2. profile      AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials), then AWS_CONFIG_FILE
//                   (~/.aws/config); static keys only
//   3. container    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI (ECS, EKS Pod Identity)
//   4. imds         EC2 instance metadata, IMDSv2 only
// The source that answers first at startup is the one refreshed later (as the SDKs do).
//
// Threading: `credential_provider::current()` is the only call on the request path; it is a
// `std::atomic<std::shared_ptr<const aws_credentials>>` load and never waits for a fetch. Fetches
// (startup, refresh) block their caller: startup is allowed to, the refresh runs on the provider's
// own thread. Nothing here logs; outcomes come back as values and through `on_refresh`.
//
// No secret ever appears in an error message, a `source` string or a refresh event.
//
// Implementation, one concern per file in aws/: credentials_environment.cpp,
// credentials_profile.cpp (+ profile_ini.*), credentials_container.cpp and credentials_imds.cpp
// (both through metadata_client.*, the one Beast translation unit), credentials_chain.cpp
// (resolve, bearer_token), credential_provider.cpp, iso8601.cpp, credential_error.cpp.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <boost/system/result.hpp>

#include "aws/sigv4.hpp"
#include "config/config.hpp"

namespace bedrock_meter::aws {

using clock_time = std::chrono::system_clock::time_point;

/// One immutable snapshot of upstream credentials.
struct aws_credentials {
  sigv4::credentials creds;
  std::optional<clock_time> expiration;  ///< nullopt = long-term keys, never refreshed
  std::string source;  ///< "environment", "profile:dev", "container", "imds" (safe to log)
};

/// Why a credential fetch failed. The default chain moves on past `not_found` (and `disabled`);
/// every other code stops it, because it means the user configured a source that is broken
/// (botocore raises in the same situations rather than silently falling through to IMDS).
enum class credential_errc : std::uint8_t {
  not_found,          ///< this source has nothing to offer (env unset, no file/profile/role)
  partial,            ///< an access key id without its secret, or the reverse
  profile_not_found,  ///< an explicitly named profile is in neither shared file
  unsupported,        ///< credential_process / SSO / role_arn profile, https container URI ...
  invalid_endpoint,   ///< malformed URI, or a FULL_URI host that is not loopback / ECS / EKS
  unreadable,         ///< a file named by an env var cannot be read (token file)
  http,               ///< connect / timeout / non-200 status from a metadata endpoint
  bad_response,       ///< JSON not parseable, fields missing, Code != Success, bad Expiration
  disabled,           ///< IMDS disabled by AWS_EC2_METADATA_DISABLED=true
};

std::string_view to_string(credential_errc e) noexcept;

/// An error value. `message` names the source, the variable / file / URI involved and what to do;
/// it never contains a key, secret, token or response body.
struct credential_error {
  credential_errc code = credential_errc::not_found;
  std::string message;
};

/// For `result::value()` on an error (boost::system::result finds it by ADL): throws
/// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const credential_error& e,
                                             const boost::source_location& loc);

/// A value or the credential error that prevented it (docs/architecture.md, "Errors").
template <class T>
using credential_result = boost::system::result<T, credential_error>;

/// Environment lookup: the value of a variable, or nullopt when unset. Injected by tests; an
/// empty function means the process environment (`::getenv`).
using env_fn = std::function<std::optional<std::string>(const std::string& name)>;
/// Wall clock, injected by tests; an empty function means `system_clock::now`.
using clock_fn = std::function<clock_time()>;

/// Knobs for fetching. Defaults are what production wants; tests override endpoints and clocks.
struct fetch_options {
  env_fn getenv;
  /// Base for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. Only tests change it.
  std::string container_base_uri = "http://169.254.170.2";
  /// Per attempt (connect + request + response), and attempts; botocore uses 2 s and 3.
  std::chrono::milliseconds container_timeout{std::chrono::seconds(2)};
  unsigned container_attempts = 3;
  /// Per attempt; AWS_METADATA_SERVICE_TIMEOUT (seconds) and AWS_METADATA_SERVICE_NUM_ATTEMPTS
  /// override these as in botocore. Kept short so that startup off EC2 costs about a second.
  std::chrono::milliseconds imds_timeout{std::chrono::seconds(1)};
  unsigned imds_attempts = 1;
};

// --- The individual sources. Each is one blocking fetch; safe to call from any thread. ----------

/// AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN, else AWS_SECURITY_TOKEN).
/// An empty AWS_ACCESS_KEY_ID counts as unset. AWS_CREDENTIAL_EXPIRATION (ISO 8601), when set,
/// makes the keys temporary. Errors: not_found, partial, bad_response (bad expiration).
credential_result<aws_credentials> from_environment(const fetch_options& opt);

/// Static keys of one profile from the shared files. `profile` empty means $AWS_PROFILE, else
/// "default". A profile named explicitly (argument or AWS_PROFILE) that exists in neither file is
/// `profile_not_found`; the implicit "default" missing is `not_found`. A profile that exists but
/// has only credential_process / sso_* / role_arn / web_identity_token_file is `unsupported`
/// (the message names the key); one with no credential keys at all is `not_found`.
/// Files: $AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, sections `[name]`), then
/// $AWS_CONFIG_FILE (default ~/.aws/config, sections `[profile name]` and `[default]`); a leading
/// `~/` expands to $HOME.
credential_result<aws_credentials> from_profile(std::string_view profile, const fetch_options& opt);

/// ECS / EKS container endpoint. RELATIVE_URI wins over FULL_URI. FULL_URI must be `http://` to a
/// loopback address, `localhost`, 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (the SDKs' rule);
/// `https://` is `unsupported` (no TLS client here). `Authorization` comes from
/// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every fetch, trailing whitespace trimmed) or
/// AWS_CONTAINER_AUTHORIZATION_TOKEN.
credential_result<aws_credentials> from_container(const fetch_options& opt);

/// EC2 instance metadata, IMDSv2: PUT a session token, GET the role name, GET its credentials.
/// Endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT, else AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6
/// -> http://[fd00:ec2::254], else http://169.254.169.254. AWS_EC2_METADATA_DISABLED=true (any
/// case) -> `disabled`. No IMDSv1 fallback.
credential_result<aws_credentials> from_imds(const fetch_options& opt);

/// A fetch bound to one source, as the refresh thread calls it again and again.
using fetch_fn = std::function<credential_result<aws_credentials>()>;

/// A resolved source: the first credentials, and how to fetch them again.
struct resolved_source {
  aws_credentials first;
  fetch_fn refetch;
};

/// Resolves `cfg.source` once: the default chain tries env, profile, container, imds in order and
/// stops at the first success or at the first error that is not `not_found` / `disabled` (an
/// explicit `cfg.profile` also skips the environment, as an explicit profile does in botocore).
/// When nothing is found the error is `not_found` with one clause per source tried. A single
/// source (`environment`, `profile`, `container`, `imds`) is tried alone. `bearer` is not an AWS
/// key source: `unsupported` (use `bearer_token`).
credential_result<resolved_source> resolve(const config::upstream_credentials& cfg,
                                           const fetch_options& opt);

/// The upstream Bedrock API key for `source: bearer`: the value of `cfg.bearer_token_env`.
/// Errors: not_found when unset or empty (the message names the variable, never the value).
credential_result<std::string> bearer_token(const config::upstream_credentials& cfg,
                                            const env_fn& getenv);

/// Parses ISO 8601 / RFC 3339 UTC-or-offset timestamps as AWS sends them:
/// `2026-11-26T12:00:00Z`, with optional fractional seconds and `+hh:mm` / `-hhmm` offsets.
/// Pure; no locale. nullopt when malformed or out of range.
std::optional<clock_time> parse_iso8601(std::string_view text) noexcept;

// --- The provider -------------------------------------------------------------------------------

/// When to refresh temporary credentials and how to back off.
struct refresh_policy {
  /// Refresh this long before `expiration` (config `upstream.credentials.refresh_before`).
  std::chrono::milliseconds refresh_before{std::chrono::minutes(5)};
  /// Never refetch sooner than this after a success, even when a source hands out credentials
  /// already inside the refresh window (otherwise we would spin on the metadata endpoint).
  std::chrono::milliseconds min_interval{std::chrono::seconds(10)};
  /// After a failure: retry_initial, doubled per consecutive failure, capped at retry_max.
  std::chrono::milliseconds retry_initial{std::chrono::seconds(1)};
  std::chrono::milliseconds retry_max{std::chrono::minutes(1)};
};

/// What one refresh attempt did; passed to `on_refresh` (e.g. to log it from main).
enum class refresh_result : std::uint8_t {
  not_due,    ///< nothing to do yet (or long-term keys)
  refreshed,  ///< new snapshot published
  failed,     ///< fetch failed; the previous snapshot stays published, a retry is scheduled
};

struct refresh_event {
  refresh_result result = refresh_result::not_due;
  std::string source;                    ///< e.g. "imds"
  std::optional<clock_time> expiration;  ///< of the snapshot now published
  std::optional<clock_time> next_attempt;
  unsigned consecutive_failures = 0;
  credential_error error;  ///< when `failed`
};

struct provider_options {
  fetch_options fetch;
  clock_fn now;  ///< empty: system_clock::now
  refresh_policy policy;
  /// Start the background refresh thread. Tests turn it off and drive `refresh_if_due()`.
  bool background_refresh = true;
  /// Called after every attempt that was due (refreshed or failed), on the refreshing thread,
  /// never with a lock held. Must not call stop().
  std::function<void(const refresh_event&)> on_refresh;
};

/// Counters and schedule, for /readyz and metrics. A copy; cheap but takes a (short) lock, so not
/// for the request path.
struct provider_status {
  std::string source;
  std::optional<clock_time> expiration;
  std::optional<clock_time> next_attempt;  ///< nullopt: long-term keys, nothing scheduled
  unsigned consecutive_failures = 0;
  std::uint64_t refreshes = 0;                 ///< successful refreshes after startup
  std::uint64_t refresh_failures = 0;          ///< failed attempts after startup
  std::optional<credential_error> last_error;  ///< of the most recent attempt, if it failed
};

/// Holds the current upstream credentials and keeps temporary ones fresh.
///
/// Created by fetching once synchronously: an error there is returned as a value and the proxy
/// should exit with its message (fail fast at startup). Afterwards a background thread wakes
/// `refresh_before` ahead of expiry, fetches from the same source and publishes the new snapshot
/// atomically. If the fetch fails the old snapshot stays published (it is still valid for up to
/// `refresh_before`), and the thread retries with exponential backoff; requests never see a gap.
/// If every retry fails past expiry the stale snapshot remains (Bedrock will answer
/// ExpiredTokenException) and `status()` shows the failures.
///
/// Not copyable or movable (it owns a thread that points back at it); hold it by unique_ptr.
class credential_provider {
 public:
  /// Resolves `cfg` (see `resolve`) and starts refreshing.
  static credential_result<std::unique_ptr<credential_provider>> create(
      const config::upstream_credentials& cfg, provider_options opt);

  /// Same, around any fetch function (tests, or a future source). `opt.fetch` is unused.
  static credential_result<std::unique_ptr<credential_provider>> create(fetch_fn fetch,
                                                                        provider_options opt);

  credential_provider(const credential_provider&) = delete;
  credential_provider& operator=(const credential_provider&) = delete;
  ~credential_provider();  ///< stop()

  /// The current snapshot; never nullptr once created (creation fails otherwise). Lock-free in
  /// intent: one atomic shared_ptr load, no waiting on fetches. A caller may keep the pointer for
  /// the whole request; a refresh publishes a new object and never modifies this one.
  std::shared_ptr<const aws_credentials> current() const noexcept;

  /// One step of the refresh loop: fetches when `now() >= next attempt`, else returns not_due.
  /// Serialized with the background thread; blocks for the fetch. Tests call it with the thread
  /// off and a fake clock.
  refresh_result refresh_if_due();
  /// Fetches now regardless of the schedule (e.g. after Bedrock answered ExpiredToken).
  refresh_result refresh_now();
  /// Makes the background thread re-read the clock and schedule now (after a fake clock moved).
  void wake();
  /// Stops and joins the background thread; waits for a fetch in progress (bounded by the
  /// endpoint timeouts). Idempotent. `current()` keeps working afterwards.
  void stop();

  provider_status status() const;

 private:
  credential_provider(fetch_fn fetch, provider_options opt, aws_credentials first);
  refresh_result attempt(bool force);
  std::optional<clock_time> schedule_after_success(const aws_credentials& c, clock_time now) const;
  clock_time now() const;
  void run();

  fetch_fn fetch_;
  provider_options opt_;
  // libstdc++ 12 implements this with a lock bit in the control-block pointer (not lock-free, but
  // readers only ever wait for another pointer copy, never for a fetch). Its load() drops the bit
  // with memory_order_relaxed, which ThreadSanitizer reports as a race against store() (a TSan
  // build needs a suppression for std::_Sp_atomic); on x86-64 a locked RMW is a full barrier.
  std::atomic<std::shared_ptr<const aws_credentials>> current_;

  std::mutex fetch_mu_;          // serializes fetches between the thread and refresh_*() callers
  mutable std::mutex state_mu_;  // guards everything below, and the thread's wait
  std::condition_variable cv_;
  bool stopping_ = false;
  bool wake_ = false;
  std::optional<clock_time> next_attempt_;
  unsigned consecutive_failures_ = 0;
  std::uint64_t refreshes_ = 0;
  std::uint64_t refresh_failures_ = 0;
  std::optional<credential_error> last_error_;
  std::thread thread_;
};

}  // namespace bedrock_meter::aws
