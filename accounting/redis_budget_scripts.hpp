#pragma once
// The Lua scripts behind redis_budget_client: one per call (reserve, settle and charge, read,
// seed), each run atomically by Redis, on the prelude they share. Internal to bm_accounting.
// docs/budgets-redis.md explains the arithmetic and the key layout they work on.
#include <cstdint>
#include <string>

namespace bedrock_meter::accounting {

enum class budget_script : std::uint8_t { reserve, settle, read, seed };

/// The script's full text (prelude, then body), as EVAL sends it.
const std::string& script_text(budget_script s);
/// The hex SHA-1 of that text, which is how EVALSHA names it (Redis computes the same digest).
const std::string& script_sha1(budget_script s);

}  // namespace bedrock_meter::accounting
