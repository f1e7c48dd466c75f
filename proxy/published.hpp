#pragma once
// Immutable snapshots (config, rate table, upstream credentials) shared by every worker.
//
// A writer publishes a new `shared_ptr<const T>`; each worker keeps its own copy and re-reads it
// only when the version number moved. The request path is one acquire load of a counter and no
// reference-count traffic between cores. (libstdc++ 12's `std::atomic<std::shared_ptr>` takes an
// internal lock bit on every load and releases it with relaxed ordering, which ThreadSanitizer
// flags and weakly ordered CPUs such as ARM64 may break; this avoids both.)
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace bedrock_meter::proxy {

template <class T>
class published {
 public:
  published() = default;
  explicit published(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}

  /// Replaces the snapshot. Readers pick it up at their next `get()`. Any thread.
  void publish(std::shared_ptr<const T> next) {
    {
      std::lock_guard lock(mutex_);
      value_ = std::move(next);
    }
    version_.fetch_add(1, std::memory_order_release);
  }

  /// The current snapshot, under the lock: for the rare path (reload, startup, admin).
  std::shared_ptr<const T> load() const {
    std::lock_guard lock(mutex_);
    return value_;
  }

  std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
  std::atomic<std::uint64_t> version_{1};
};

/// A per-thread view of a `published<T>`. Not thread-safe itself: one per worker.
template <class T>
class snapshot_reader {
 public:
  explicit snapshot_reader(const published<T>& source) : source_(&source) {}

  /// The newest snapshot; the returned reference stays valid until the next call on this reader.
  /// Copy the shared_ptr to hold a snapshot across a suspension point.
  const std::shared_ptr<const T>& get() {
    const auto v = source_->version();
    if (v != seen_) {
      cached_ = source_->load();
      seen_ = v;
    }
    return cached_;
  }

 private:
  const published<T>* source_;
  std::shared_ptr<const T> cached_;
  std::uint64_t seen_ = 0;
};

}  // namespace bedrock_meter::proxy
