#include "accounting/inflight_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "metering/input_estimate.hpp"

namespace bedrock_meter::accounting {

namespace m = bedrock_meter::metering;

namespace {

constexpr std::array<char, 8> magic = {'B', 'M', 'I', 'N', 'F', 'L', 'T', '1'};

// A slot: fixed fields, then each string at a fixed place with its length.
enum : std::uint32_t { slot_free = 0, slot_live = 1, slot_settled = 2 };
struct slot_fields {
  std::uint32_t state;  // read and written atomically (std::atomic_ref)
  std::uint32_t status;
  std::int64_t time_ms;
  std::uint64_t bytes_in;
  std::uint64_t text_bytes;
  std::uint64_t input, output, cache_read, cache_write, cache_write_1h;
  std::int64_t duration_us;
  std::int64_t first_byte_us;
  std::uint64_t bytes_out;
  std::uint8_t op, latency, usage_source, outcome;
  std::uint16_t len[8];
  // Added after the rest, in what was padding before text_base: a journal left by an older
  // build has zeros here (slots are never written past their fields), read as no speech.
  std::uint64_t speech_input, speech_output;
};
enum text : std::size_t { request_id, team, app, principal, model, region, tier, stop, texts };
constexpr std::array<std::size_t, texts> text_cap = {96, 128, 128, 128, 1024, 48, 48, 96};
constexpr std::size_t text_base = 160;
static_assert(sizeof(slot_fields) <= text_base);

constexpr std::size_t text_offset(std::size_t t) noexcept {
  std::size_t off = text_base;
  for (std::size_t i = 0; i < t; ++i) off += text_cap[i];
  return off;
}
static_assert(text_offset(texts) <= inflight_journal::slot_bytes);

slot_fields* fields(unsigned char* slot) noexcept { return reinterpret_cast<slot_fields*>(slot); }

std::atomic_ref<std::uint32_t> state_of(unsigned char* slot) noexcept {
  return std::atomic_ref<std::uint32_t>(fields(slot)->state);
}

/// `v` cut to `cap` bytes at a UTF-8 boundary.
std::string_view cut(std::string_view v, std::size_t cap) noexcept {
  if (v.size() <= cap) return v;
  std::size_t n = cap;
  while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xC0) == 0x80) --n;
  return v.substr(0, n);
}

void put_text(unsigned char* slot, text t, std::string_view v) noexcept {
  v = cut(v, text_cap[t]);
  if (!v.empty()) std::memcpy(slot + text_offset(t), v.data(), v.size());
  fields(slot)->len[t] = static_cast<std::uint16_t>(v.size());
}

std::string get_text(const unsigned char* slot, text t) {
  const auto* f = reinterpret_cast<const slot_fields*>(slot);
  const std::size_t n = std::min<std::size_t>(f->len[t], text_cap[t]);
  return std::string(reinterpret_cast<const char*>(slot + text_offset(t)), n);
}

std::string in_use(const std::string& path) {
  return "inflight journal " + path +
         " is in use by another running bedrock-meter serve on the same ledger; one process "
         "writes a ledger (give each replica its own ledger.path)";
}

std::string cannot(const std::string& what, const std::string& path) {
  return "inflight journal " + path + ": " + what + ": " + std::strerror(errno);
}

/// The ledger row of one slot a previous process left in use.
m::settlement row_of(const unsigned char* slot, const m::rate_table* table,
                     const std::vector<m::model_mapping>& mappings) {
  const auto& f = *reinterpret_cast<const slot_fields*>(slot);
  const bool live = f.state == slot_live;
  const std::string rid = get_text(slot, request_id);
  const std::string team_s = get_text(slot, team), app_s = get_text(slot, app),
                    principal_s = get_text(slot, principal), region_s = get_text(slot, region),
                    tier_s = get_text(slot, tier), stop_s = get_text(slot, stop);
  const m::route route{static_cast<m::operation>(f.op), get_text(slot, model), {}};
  m::exchange_facts x;
  x.request_id = rid;
  x.arrived = std::chrono::system_clock::time_point(std::chrono::milliseconds(f.time_ms));
  x.duration = std::chrono::microseconds(live ? 0 : f.duration_us);
  if (f.first_byte_us >= 0) x.first_byte = std::chrono::microseconds(f.first_byte_us);
  x.route = &route;
  x.principal = principal_s;
  x.team = team_s;
  x.app = app_s;
  x.region = region_s;
  x.latency = static_cast<m::latency_mode>(f.latency);
  m::token_usage u;
  if (live) {
    // Bedrock had the request; what it billed is unknown. The proxy's own estimator, with
    // nothing learned yet in this process: the body and the generated text seen so far at its
    // default bytes per token (the same 4 an estimated stream's text is counted at).
    if (m::billed_by_tokens(route.op)) {
      const m::input_estimator fresh;
      u.input = fresh.estimate(route.model_id, f.bytes_in);
      u.output = fresh.estimate(route.model_id, f.text_bytes);
      u.source = m::usage_source::estimated;
    }
  } else {
    u.input = f.input;
    u.output = f.output;
    u.cache_read = f.cache_read;
    u.cache_write = f.cache_write;
    u.cache_write_1h = f.cache_write_1h;
    u.speech_input = f.speech_input;
    u.speech_output = f.speech_output;
    u.source = static_cast<m::usage_source>(f.usage_source);
  }
  x.usage = u;
  x.service_tier = tier_s;
  x.status = f.status;
  x.outcome = live ? m::request_outcome::interrupted : static_cast<m::request_outcome>(f.outcome);
  x.bytes_in = f.bytes_in;
  x.bytes_out = f.bytes_out;
  x.stop_reason = stop_s;
  return m::settle(x, table, mappings);
}

}  // namespace

boost::system::result<std::vector<m::settlement>, std::string> inflight_journal::recover(
    const std::string& path, const m::rate_table* table,
    const std::vector<m::model_mapping>& mappings) {
  std::vector<m::settlement> rows;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return rows;
    return cannot("cannot open", path);
  }
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {  // a live process's slots are not leftovers
    ::close(fd);
    return in_use(path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return cannot("cannot stat", path);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size < header_bytes) {  // created but never laid out: nothing was in flight
    ::close(fd);
    return rows;
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return cannot("cannot map", path);
  const auto* base = static_cast<const unsigned char*>(p);
  std::uint32_t slot_size = 0, total = 0;
  std::memcpy(&slot_size, base + magic.size(), sizeof slot_size);
  std::memcpy(&total, base + magic.size() + 4, sizeof total);
  if (std::memcmp(base, magic.data(), magic.size()) != 0 || slot_size != slot_bytes ||
      header_bytes + std::size_t{total} * slot_bytes > size) {
    ::munmap(p, size);
    return std::string("inflight journal " + path +
                       ": not a journal this version writes; move it aside to start afresh");
  }
  for (std::uint32_t i = 0; i < total; ++i) {
    const unsigned char* s = base + header_bytes + std::size_t{i} * slot_bytes;
    const auto state = reinterpret_cast<const slot_fields*>(s)->state;
    if (state == slot_live || state == slot_settled) rows.push_back(row_of(s, table, mappings));
  }
  ::munmap(p, size);
  std::sort(rows.begin(), rows.end(),
            [](const m::settlement& a, const m::settlement& b) { return a.time_ms < b.time_ms; });
  return rows;
}

boost::system::result<std::unique_ptr<inflight_journal>, std::string> inflight_journal::create(
    const std::string& path, unsigned workers) {
  workers = std::max(1u, workers);
  const std::size_t total = std::size_t{workers} * slots_per_worker;
  const std::size_t size = header_bytes + total * slot_bytes;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return cannot("cannot create", path);
  // Held until this process ends: a second `serve` on the same ledger would take the first's
  // live requests for leftovers and write them twice.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return in_use(path);
  }
  // Emptied, then sparse: only the pages of slots in use ever take space.
  if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return cannot("cannot size", path);
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ::close(fd);
    return cannot("cannot map", path);
  }
  auto* base = static_cast<unsigned char*>(p);
  const auto slot_size = static_cast<std::uint32_t>(slot_bytes);
  const auto slots = static_cast<std::uint32_t>(total);
  std::memcpy(base + magic.size(), &slot_size, sizeof slot_size);
  std::memcpy(base + magic.size() + 4, &slots, sizeof slots);
  std::memcpy(base, magic.data(), magic.size());  // last: a torn header reads as "not a journal"
  return std::unique_ptr<inflight_journal>(new inflight_journal(workers, base, size, fd));
}

inflight_journal::inflight_journal(unsigned workers, unsigned char* base, std::size_t bytes, int fd)
    : workers_(workers), base_(base), bytes_(bytes), fd_(fd), cursor_(workers, 0) {}

inflight_journal::~inflight_journal() {
  ::munmap(base_, bytes_);
  ::close(fd_);  // releases the lock
}

inflight_journal::slot_id inflight_journal::take(unsigned worker, const start_record& r) noexcept {
  if (worker >= workers_) return none;
  auto& cursor = cursor_[worker];
  const std::size_t first = std::size_t{worker} * slots_per_worker;
  for (std::size_t tried = 0; tried < slots_per_worker; ++tried) {
    const auto i = static_cast<slot_id>(first + (cursor + tried) % slots_per_worker);
    unsigned char* s = slot(i);
    if (state_of(s).load(std::memory_order_acquire) != slot_free) continue;
    cursor = static_cast<std::uint32_t>((cursor + tried + 1) % slots_per_worker);
    auto* f = fields(s);
    f->status = 0;
    f->time_ms = r.time_ms;
    f->bytes_in = r.bytes_in;
    f->text_bytes = 0;
    f->first_byte_us = -1;
    f->bytes_out = 0;
    f->op = static_cast<std::uint8_t>(r.op);
    f->latency = static_cast<std::uint8_t>(r.latency);
    put_text(s, request_id, r.request_id);
    put_text(s, team, r.team);
    put_text(s, app, r.app);
    put_text(s, principal, r.principal);
    put_text(s, model, r.model_id);
    put_text(s, region, r.region);
    put_text(s, tier, {});
    put_text(s, stop, {});
    state_of(s).store(slot_live, std::memory_order_release);  // last: the record is whole
    return i;
  }
  full_.fetch_add(1, std::memory_order_relaxed);
  return none;
}

void inflight_journal::answered(slot_id s, unsigned status, std::string_view rid) noexcept {
  if (s == none) return;
  fields(slot(s))->status = status;
  put_text(slot(s), request_id, rid);
}

void inflight_journal::progress(slot_id s, std::uint64_t text_bytes) noexcept {
  if (s != none) fields(slot(s))->text_bytes = text_bytes;
}

void inflight_journal::settled(slot_id s, const m::settlement& row) noexcept {
  if (s == none) return;
  unsigned char* p = slot(s);
  auto* f = fields(p);
  f->status = row.status;
  f->input = row.input_tokens;
  f->output = row.output_tokens;
  f->cache_read = row.cache_read_tokens;
  f->cache_write = row.cache_write_tokens;
  f->cache_write_1h = row.cache_write_1h_tokens;
  f->speech_input = row.speech_input_tokens;
  f->speech_output = row.speech_output_tokens;
  f->duration_us = row.duration_us;
  f->first_byte_us = row.first_byte_us;
  f->bytes_out = row.bytes_out;
  f->usage_source = static_cast<std::uint8_t>(row.usage_source);
  f->outcome = static_cast<std::uint8_t>(row.outcome);
  put_text(p, request_id, row.request_id);
  put_text(p, tier, row.service_tier);
  put_text(p, stop, row.stop_reason);
  state_of(p).store(slot_settled, std::memory_order_release);
}

void inflight_journal::release(slot_id s) noexcept {
  if (s != none) state_of(slot(s)).store(slot_free, std::memory_order_release);
}

}  // namespace bedrock_meter::accounting
