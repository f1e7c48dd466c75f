// The Redis implementation of shared_budget_store: a thin adapter over redis_budget_client
// (accounting/redis_budget.hpp), which owns the connection, the Lua scripts and the reconnect
// policy. Every redis_error becomes `unavailable`, for the engine to apply its fallback.
#include "accounting/budgets.hpp"
#include "accounting/redis_budget.hpp"

namespace bedrock_meter::accounting {

namespace {

shared_budget_store::state convert(const redis_budget_state& s) { return {s.spent, s.reserved}; }

class redis_store final : public shared_budget_store {
 public:
  explicit redis_store(redis_endpoint ep) : client_(std::move(ep)) {}

  reserve_reply reserve(std::string_view budget, std::int64_t period_start, std::int64_t limit,
                        std::int64_t worst_case, std::chrono::seconds reservation_ttl,
                        std::chrono::seconds key_ttl) override {
    const auto r =
        client_.reserve(budget, period_start, limit, worst_case, reservation_ttl, key_ttl);
    if (!r) return {};
    return {r->admitted ? outcome::ok : outcome::blocked, r->reservation_id, convert(r->state)};
  }
  settle_reply settle(std::string_view budget, std::int64_t period_start,
                      std::string_view reservation_id, std::int64_t actual,
                      std::chrono::seconds key_ttl) override {
    return booked(client_.settle(budget, period_start, reservation_id, actual, key_ttl));
  }
  settle_reply charge(std::string_view budget, std::int64_t period_start, std::int64_t actual,
                      std::chrono::seconds key_ttl) override {
    return booked(client_.charge(budget, period_start, actual, key_ttl));
  }
  std::optional<state> read(std::string_view budget, std::int64_t period_start) override {
    const auto r = client_.read(budget, period_start);
    if (!r) return std::nullopt;
    return convert(*r);
  }
  outcome seed(std::string_view budget, std::int64_t period_start, std::int64_t spent,
               std::chrono::seconds key_ttl) override {
    const auto r = client_.seed(budget, period_start, spent, key_ttl);
    if (!r) return outcome::unavailable;
    return *r == redis_seed_outcome::applied ? outcome::ok : outcome::blocked;
  }

 private:
  static settle_reply booked(const redis_result<redis_settle_reply>& r) {
    if (!r) return {};
    return {outcome::ok, convert(r->before), convert(r->after)};
  }

  redis_budget_client client_;
};

}  // namespace

std::unique_ptr<shared_budget_store> make_shared_budget_store(
    const config::budget_redis_config& cfg) {
  redis_endpoint ep;
  ep.host = cfg.host;
  ep.port = cfg.port;
  ep.unix_socket = cfg.unix_socket;
  ep.password = cfg.password;
  ep.db = cfg.db;
  ep.timeout = cfg.timeout;
  ep.key_prefix = cfg.key_prefix;
  return std::make_unique<redis_store>(std::move(ep));
}

}  // namespace bedrock_meter::accounting
