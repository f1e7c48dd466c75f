#pragma once
/// The Bedrock simulator's pure half, answer side: the whole response bodies and the event-stream
/// scripts for every operation and model family, built from a plan (sim_logic.hpp). No sockets,
/// no Asio: the server gets bytes back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/simulator/sim_logic.hpp"

namespace bedrock_meter::simulator {

/// Values known only when the answer is sent.
struct timing {
  std::uint64_t latency_ms = 0;
  std::uint64_t first_byte_ms = 0;
};

/// Served service tier and latency mode, echoed into bodies where Bedrock puts them.
struct served_config {
  std::string tier;     ///< empty: none
  std::string latency;  ///< empty: none
};

/// The `{"message":...}` error body.
std::string error_body(std::string_view message);

/// Whole-body answers (`application/json`).
std::string converse_body(const plan& p, const timing& t, const served_config& s);
std::string invoke_body(model_family fam, std::string_view model_id, const plan& p,
                        const request_facts& facts, std::string_view message_id);
std::string count_tokens_body(const plan& p);
std::string apply_guardrail_body(const directive& d);
std::string invoke_guardrail_checks_body(std::string_view request_body);

/// The events of a streamed answer. Index space: [0, size()); events [prefix, prefix + deltas)
/// carry the content. `render` appends the encoded event-stream frame of event `i`.
class stream_script {
 public:
  stream_script(sim_op op, model_family fam, std::string model_id, plan p, served_config served,
                std::string message_id);

  [[nodiscard]] std::size_t size() const noexcept { return prefix_ + deltas_ + suffix_; }
  [[nodiscard]] std::size_t prefix() const noexcept { return prefix_; }
  [[nodiscard]] std::size_t deltas() const noexcept { return deltas_; }

  void render(std::size_t i, const timing& t, std::string& out) const;

 private:
  // Where an event stands in a framed script (Converse*, Nova and Anthropic chunks); Titan,
  // Llama and Mistral scripts are all deltas.
  enum class part : std::uint8_t {
    message_start,
    block_start,  ///< Anthropic only
    delta,
    block_stop,
    stop,    ///< the event carrying the stop reason
    finish,  ///< the last event, carrying usage or metrics
  };
  [[nodiscard]] part part_of(std::size_t i) const noexcept;

  // Appends event i's JSON and returns its `:event-type`.
  std::string_view render_converse(std::size_t i, const timing& t, std::string& json) const;
  void render_chunk(std::size_t i, const timing& t, std::string& json) const;
  void render_titan_chunk(std::size_t delta, bool last, std::string& json) const;
  void render_llama_chunk(std::size_t delta, bool last, std::string& json) const;
  void render_mistral_chunk(std::size_t delta, bool last, std::string& json) const;
  void render_nova_chunk(std::size_t i, std::string& json) const;
  void render_anthropic_chunk(std::size_t i, std::string& json) const;
  void append_metrics(const timing& t, std::string& json) const;
  void append_delta_text(std::size_t delta, std::string& json) const;
  void append_stop_or_null(bool last, std::string& json) const;
  [[nodiscard]] std::uint64_t tokens_through(std::size_t delta) const noexcept;
  [[nodiscard]] std::string_view stop_reason() const;

  sim_op op_;
  model_family fam_;
  std::string model_id_;
  plan plan_;
  served_config served_;
  std::string message_id_;
  std::size_t prefix_ = 0, deltas_ = 0, suffix_ = 0;
};

/// Encodes an exception frame (`:message-type exception`) with a Bedrock-shaped payload.
std::string stream_exception_frame(std::string_view exception_type, std::string_view message);

/// Family-specific stop reason for a plan (e.g. "end_turn", "FINISH", "stop", "length").
std::string_view stop_reason_for(model_family fam, sim_op op, const plan& p);

}  // namespace bedrock_meter::simulator
