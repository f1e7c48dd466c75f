// The provider that holds the current upstream credentials and refreshes temporary ones.
#include "aws/credentials.hpp"

#include <algorithm>
#include <utility>

namespace bedrock_meter::aws {
namespace {

// The background thread re-reads the clock at least this often, so a suspended laptop or a
// wall-clock jump cannot make it oversleep a refresh by more than this.
constexpr std::chrono::minutes max_refresh_sleep{1};
// Cap on the failure count used for the backoff exponent (avoids shifting past the type).
constexpr unsigned max_backoff_doublings = 20;

// retry_initial, doubled per consecutive failure after the first, capped at retry_max.
std::chrono::milliseconds retry_delay(const refresh_policy& policy, unsigned failures) {
  auto delay = policy.retry_initial;
  for (unsigned i = 1; i < std::min(failures, max_backoff_doublings) && delay < policy.retry_max;
       ++i) {
    delay *= 2;
  }
  return std::min(delay, policy.retry_max);
}

}  // namespace

credential_result<std::unique_ptr<credential_provider>> credential_provider::create(
    const config::upstream_credentials& cfg, provider_options opt) {
  opt.policy.refresh_before = cfg.refresh_before;
  auto resolved = resolve(cfg, opt.fetch);
  if (!resolved) return resolved.error();
  return std::unique_ptr<credential_provider>(new credential_provider(
      std::move(resolved->refetch), std::move(opt), std::move(resolved->first)));
}

credential_result<std::unique_ptr<credential_provider>> credential_provider::create(
    fetch_fn fetch, provider_options opt) {
  auto first = fetch();
  if (!first) return first.error();
  return std::unique_ptr<credential_provider>(
      new credential_provider(std::move(fetch), std::move(opt), std::move(*first)));
}

credential_provider::credential_provider(fetch_fn fetch, provider_options opt,
                                         aws_credentials first)
    : fetch_(std::move(fetch)), opt_(std::move(opt)) {
  next_attempt_ = schedule_after_success(first, now());
  current_.store(std::make_shared<const aws_credentials>(std::move(first)),
                 std::memory_order_release);
  // Started last: everything the thread reads is initialized.
  if (opt_.background_refresh) thread_ = std::thread([this] { run(); });
}

credential_provider::~credential_provider() { stop(); }

std::shared_ptr<const aws_credentials> credential_provider::current() const noexcept {
  return current_.load(std::memory_order_acquire);
}

clock_time credential_provider::now() const {
  return opt_.now ? opt_.now() : std::chrono::system_clock::now();
}

std::optional<clock_time> credential_provider::schedule_after_success(const aws_credentials& c,
                                                                      clock_time t) const {
  if (!c.expiration) return std::nullopt;  // long-term keys: nothing to refresh
  const auto due = *c.expiration - opt_.policy.refresh_before;
  return std::max<clock_time>(due, t + opt_.policy.min_interval);
}

refresh_result credential_provider::refresh_if_due() { return attempt(false); }
refresh_result credential_provider::refresh_now() { return attempt(true); }

refresh_result credential_provider::attempt(bool force) {
  const std::lock_guard fetch_lock(fetch_mu_);
  if (!force) {
    const std::lock_guard lock(state_mu_);
    if (!next_attempt_ || now() < *next_attempt_) return refresh_result::not_due;
  }

  // The fetch runs without state_mu_: status() and the thread's wait stay responsive, and
  // current() never waits on anything.
  auto fetched = fetch_();

  refresh_event ev;
  {
    const std::lock_guard lock(state_mu_);
    const auto t = now();
    if (fetched) {
      auto snap = std::make_shared<const aws_credentials>(std::move(*fetched));
      next_attempt_ = schedule_after_success(*snap, t);
      ev.source = snap->source;
      ev.expiration = snap->expiration;
      current_.store(std::move(snap), std::memory_order_release);
      consecutive_failures_ = 0;
      ++refreshes_;
      last_error_.reset();
      ev.result = refresh_result::refreshed;
    } else {
      ++consecutive_failures_;
      ++refresh_failures_;
      next_attempt_ = t + retry_delay(opt_.policy, consecutive_failures_);
      last_error_ = fetched.error();
      const auto old = current_.load(std::memory_order_acquire);
      ev.source = old->source;
      ev.expiration = old->expiration;
      ev.error = fetched.error();
      ev.result = refresh_result::failed;
    }
    ev.next_attempt = next_attempt_;
    ev.consecutive_failures = consecutive_failures_;
  }
  cv_.notify_all();  // the thread recomputes its sleep from the new schedule
  if (opt_.on_refresh) opt_.on_refresh(ev);
  return ev.result;
}

void credential_provider::wake() {
  {
    const std::lock_guard lock(state_mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void credential_provider::stop() {
  {
    const std::lock_guard lock(state_mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void credential_provider::run() {
  std::unique_lock lock(state_mu_);
  const auto woken = [this] { return stopping_ || wake_; };
  while (!stopping_) {
    wake_ = false;
    if (!next_attempt_) {
      cv_.wait(lock, woken);
      continue;
    }
    const auto t = now();
    if (t >= *next_attempt_) {
      lock.unlock();
      attempt(false);
      lock.lock();
      continue;
    }
    // Sleep on the steady clock for the wall-clock distance, at most max_refresh_sleep; waking
    // early is harmless (the loop re-reads the clock).
    const auto sleep = std::min<std::chrono::milliseconds>(
        std::chrono::ceil<std::chrono::milliseconds>(*next_attempt_ - t), max_refresh_sleep);
    cv_.wait_for(lock, sleep, woken);
  }
}

provider_status credential_provider::status() const {
  provider_status s;
  const auto snap = current();
  s.source = snap->source;
  s.expiration = snap->expiration;
  const std::lock_guard lock(state_mu_);
  s.next_attempt = next_attempt_;
  s.consecutive_failures = consecutive_failures_;
  s.refreshes = refreshes_;
  s.refresh_failures = refresh_failures_;
  s.last_error = last_error_;
  return s;
}

}  // namespace bedrock_meter::aws
