#pragma once
// Start records of the requests in flight, so a process killed mid-request (kill -9, the OOM
// killer) leaves behind what it was doing, and the next start writes each one to the ledger.
//
// The records live in a memory-mapped file beside the ledger (`<ledger.path>.inflight`), one
// fixed-size slot per request, each worker taking slots from its own region. Taking a slot, noting
// progress and settling it are plain stores into shared memory: no system call, no lock, nothing
// waited on before the request is forwarded. The kernel keeps the pages of a killed process, so
// the next start finds every slot that was in use:
//   - `live`: the request was forwarded and had not settled. It becomes an `interrupted` row with
//     estimated usage (input from the body size, output from the generated text seen so far).
//   - `settled`: it had settled but the ledger had not committed its row yet (the queue holds
//     rows up to `ledger.flush_interval`). It becomes the row it would have been.
// The ledger's writer frees a slot once the row is committed. What the kernel had not written back
// when the machine itself went down (power loss, kernel panic) is lost: the journal is for process
// deaths, the ledger's fsync'd commits for the rest.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "metering/model_id.hpp"
#include "metering/rate_table.hpp"
#include "metering/route.hpp"
#include "metering/settlement.hpp"

namespace bedrock_meter::accounting {

class inflight_journal {
 public:
  static constexpr std::size_t slot_bytes = 2048;
  static constexpr std::size_t slots_per_worker = 4096;
  /// A slot: an index into the file; `none` when no slot was free (the request goes on without a
  /// start record, counted in `full_count`).
  using slot_id = std::int32_t;
  static constexpr slot_id none = -1;

  /// What a start record holds: enough to price the request again.
  struct start_record {
    std::int64_t time_ms = 0;  ///< arrival, unix ms
    std::string_view request_id, team, app, principal, model_id, region;
    metering::operation op{};
    metering::latency_mode latency = metering::latency_mode::standard;
    std::uint64_t bytes_in = 0;
  };

  /// The rows a previous process left in the journal at `path` (none when there is no file):
  /// live slots as `interrupted` rows with estimated usage, settled ones as they settled, priced
  /// with `table` (null: unpriced) and `mappings`. The file is left as it is, so rows are not lost
  /// if this process dies before the ledger has them; `create` then starts it afresh. An error
  /// names the file and the cause.
  static boost::system::result<std::vector<metering::settlement>, std::string> recover(
      const std::string& path, const metering::rate_table* table,
      const std::vector<metering::model_mapping>& mappings);

  /// A fresh journal at `path` (replacing what was there) with a region for each of `workers`,
  /// locked for this process (flock): `create` and `recover` in another process are refused
  /// while it lives, naming the file.
  static boost::system::result<std::unique_ptr<inflight_journal>, std::string> create(
      const std::string& path, unsigned workers);

  ~inflight_journal();
  inflight_journal(const inflight_journal&) = delete;
  inflight_journal& operator=(const inflight_journal&) = delete;

  /// On `worker`'s thread: a free slot of its region holding `r` as live, or `none`. Strings
  /// longer than their place are cut (at a UTF-8 boundary).
  slot_id take(unsigned worker, const start_record& r) noexcept;
  /// The answer's head arrived: the status sent on and the request id it carries.
  void answered(slot_id s, unsigned status, std::string_view request_id) noexcept;
  /// Generated text seen so far (UTF-8 bytes), for the estimate if the process dies.
  void progress(slot_id s, std::uint64_t text_bytes) noexcept;
  /// The request settled: the slot now holds its whole record until the ledger commits it.
  void settled(slot_id s, const metering::settlement& row) noexcept;
  /// The ledger committed the row (or it never will be written): the slot is free. Any thread.
  void release(slot_id s) noexcept;

  /// Requests that found no free slot in their worker's region.
  std::uint64_t full_count() const noexcept { return full_.load(std::memory_order_relaxed); }

 private:
  inflight_journal(unsigned workers, unsigned char* base, std::size_t bytes, int fd);
  unsigned char* slot(slot_id s) const noexcept { return base_ + header_bytes + s * slot_bytes; }
  static constexpr std::size_t header_bytes = 4096;

  unsigned workers_;
  unsigned char* base_;
  std::size_t bytes_;
  int fd_;                             // holds the file's lock (flock) for this process's lifetime
  std::vector<std::uint32_t> cursor_;  // per worker: where its next search starts
  std::atomic<std::uint64_t> full_{0};
};

}  // namespace bedrock_meter::accounting
