#pragma once
// The forward stage of InvokeModelWithBidirectionalStream (Amazon Nova Sonic): an HTTP/2 request
// of its own to Bedrock, both directions streaming at once, event by event.
//
//   client ──input events──► verify each event's signature (the caller's chain) ─► re-sign it
//          (proxy's chain) ─► Bedrock           (pump_input, concurrently with:)
//   client ◄──output events── usage observer ◄── Bedrock       (the relay loop)
//
// Back-pressure both ways: an input event is read from the client only once the previous one is
// framed for Bedrock (its flow-control window), and an output chunk only once the client took the
// previous one. Client abort, upstream cut and budget refusal end it as they end other streams:
// a client that leaves ends the input (END_STREAM) and the answer is drained until Bedrock's
// final usage event; a cut answer is `upstream_cut` with the last running totals (docs/http2.md).
#include "io/net.hpp"

namespace bedrock_meter::proxy {

struct exchange_context;
class response_sink;

/// Forwards the exchange's streamed request (ctx.req.body_stream) over a new HTTP/2 connection to
/// ctx.target and streams the answer to `out`. Settles nothing itself: run_exchange does.
io::awaitable<void> forward_bidirectional(exchange_context& ctx, response_sink& out);

}  // namespace bedrock_meter::proxy
