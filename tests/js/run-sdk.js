// Drives the AWS SDK for JavaScript v3 Bedrock Runtime client against bedrock-meter and prints one
// JSON document with what came back, for tests/integration/test_http2.py to assert on.
//   BM_ENDPOINT   proxy URL (https://... trusts NODE_EXTRA_CA_CERTS; http://... is h2c)
//   BM_HANDLER    "default" (the client's own: NodeHttp2Handler, one connection per request),
//                 "h2-shared" (NodeHttp2Handler multiplexing streams) or "http1" (NodeHttpHandler)
//   BM_SCENARIO   "operations" | "concurrent" | "multiplex" | "abort" | "bidi" | "bidi_abort" |
//                 "bidi_exception" | "bidi_cut" (InvokeModelWithBidirectionalStream: Nova Sonic)
"use strict";
const {
  BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InvokeModelCommand,
  InvokeModelWithResponseStreamCommand, CountTokensCommand, InvokeModelWithBidirectionalStreamCommand,
} = require("@aws-sdk/client-bedrock-runtime");
const { NodeHttpHandler, NodeHttp2Handler } = require("@smithy/node-http-handler");

const CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const NOVA = "amazon.nova-lite-v1:0";

function makeClient() {
  const cfg = {
    endpoint: process.env.BM_ENDPOINT,
    region: "us-east-1",
    credentials: { accessKeyId: process.env.BM_AKID, secretAccessKey: process.env.BM_SECRET },
    maxAttempts: 1,
  };
  if (process.env.BM_HANDLER === "http1") cfg.requestHandler = new NodeHttpHandler();
  // The Bedrock Runtime client's default HTTP/2 handler sets disableConcurrentStreams: true (one
  // connection per request, for its bidirectional streams); "h2-shared" is the same handler with
  // streams multiplexed on one connection, as other clients and proxies in front of us use it.
  if (process.env.BM_HANDLER === "h2-shared")
    cfg.requestHandler = new NodeHttp2Handler({ disableConcurrentStreams: false });
  return new BedrockRuntimeClient(cfg);
}

const msgs = (text) => [{ role: "user", content: [{ text }] }];

async function operations(c) {
  const out = {};
  const conv = await c.send(new ConverseCommand({
    modelId: CLAUDE, messages: msgs("hello SIM{input=120,output=30,cache_read=40,cache_write=8}"),
  }));
  out.converse = { id: conv.$metadata.requestId, input: conv.usage.inputTokens,
                   output: conv.usage.outputTokens, role: conv.output.message.role };

  const cs = await c.send(new ConverseStreamCommand({
    modelId: NOVA, messages: msgs("SIM{input=55,output=21,events=7}"),
  }));
  let deltas = 0, usage = null;
  for await (const ev of cs.stream) {
    if (ev.contentBlockDelta) deltas++;
    if (ev.metadata) usage = ev.metadata.usage;
  }
  out.converse_stream = { id: cs.$metadata.requestId, deltas, input: usage.inputTokens,
                          output: usage.outputTokens };

  const body = JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 100,
                                messages: [{ role: "user", content: "hi SIM{input=11,output=9}" }] });
  const inv = await c.send(new InvokeModelCommand({ modelId: CLAUDE, body }));
  const invBody = JSON.parse(Buffer.from(inv.body).toString());
  out.invoke = { id: inv.$metadata.requestId, output: invBody.usage.output_tokens };

  const st = await c.send(new InvokeModelWithResponseStreamCommand({
    modelId: CLAUDE,
    body: JSON.stringify({ anthropic_version: "bedrock-2023-05-31", max_tokens: 100,
                           messages: [{ role: "user", content: "SIM{input=70,output=12,events=4}" }] }),
  }));
  const chunks = [];
  for await (const ev of st.body) chunks.push(JSON.parse(Buffer.from(ev.chunk.bytes).toString()));
  const m = chunks[chunks.length - 1]["amazon-bedrock-invocationMetrics"];
  out.invoke_stream = { id: st.$metadata.requestId, first: chunks[0].type,
                        input: m.inputTokenCount, output: m.outputTokenCount };

  const ct = await c.send(new CountTokensCommand({
    modelId: CLAUDE, input: { converse: { messages: msgs("SIM{input=33}") } },
  }));
  out.count_tokens = { id: ct.$metadata.requestId, input: ct.inputTokens };
  return out;
}

// Several ConverseStream calls at once. smithy's NodeHttp2Handler gives every event-stream
// operation a session of its own whatever disableConcurrentStreams says (see docs/http2.md), so
// these run side by side on separate connections.
async function concurrent(c) {
  const n = 6, pace = 100, events = 5;
  const start = Date.now();
  const one = async (i) => {
    const r = await c.send(new ConverseStreamCommand({
      modelId: NOVA, messages: msgs(`SIM{input=${10 + i},output=${events},events=${events},pace_ms=${pace}}`),
    }));
    const arrivals = [];
    let usage = null;
    for await (const ev of r.stream) {
      if (ev.contentBlockDelta) arrivals.push(Date.now() - start);
      if (ev.metadata) usage = ev.metadata.usage;
    }
    return { id: r.$metadata.requestId, arrivals, input: usage.inputTokens, output: usage.outputTokens };
  };
  // One request first: the handler then has a live session that the concurrent streams share
  // (fired together before any session exists, each would race to open its own).
  await c.send(new CountTokensCommand({ modelId: NOVA, input: { converse: { messages: msgs("warm") } } }));
  const results = await Promise.all([...Array(n).keys()].map(one));
  return { streams: results, elapsed_ms: Date.now() - start };
}

// Several Converse calls at once, each answered after first_byte_ms: with disableConcurrentStreams
// false the handler leases one pooled session for all of them, so they are streams of one
// connection, in flight together.
async function multiplex(c) {
  const n = 6, firstByte = 600;
  const start = Date.now();
  const one = async (i) => {
    const r = await c.send(new ConverseCommand({
      modelId: NOVA,
      messages: msgs(`SIM{input=${20 + i},output=${3 + i},fault=slow_first_byte,first_byte_ms=${firstByte}}`),
    }));
    return { id: r.$metadata.requestId, input: r.usage.inputTokens, output: r.usage.outputTokens };
  };
  const calls = await Promise.all([...Array(n).keys()].map(one));
  return { calls, elapsed_ms: Date.now() - start, first_byte_ms: firstByte };
}

// A ConverseStream abandoned after its first delta (AbortController: RST_STREAM on HTTP/2).
async function abort(c) {
  const ac = new AbortController();
  const r = await c.send(new ConverseStreamCommand({
    modelId: NOVA, messages: msgs("SIM{input=40,output=30,events=30,pace_ms=100}"),
  }), { abortSignal: ac.signal });
  let deltas = 0, error = null;
  // The directive's counts are what the simulator reports in the stream's final metadata event;
  // the proxy must settle exactly these even though the client never reads that far.
  try {
    for await (const ev of r.stream) {
      if (ev.contentBlockDelta && ++deltas === 2) ac.abort();
    }
  } catch (e) {
    error = e.name;
  }
  return { id: r.$metadata.requestId, deltas, error, expected_input: 40, expected_output: 30 };
}

// --- InvokeModelWithBidirectionalStream (Nova Sonic) ---------------------------------------------
// The session as the Nova Sonic docs describe it: sessionStart, promptStart, a SYSTEM text
// content, then user turns (AUDIO: 16 kHz LPCM, base64; TEXT), promptEnd, sessionEnd. Each input
// event is {chunk: {bytes}} with bytes the JSON {"event": {...}}; the SDK signs each one.
const SONIC = "amazon.nova-sonic-v1:0";
const enc = (event) => ({ chunk: { bytes: Buffer.from(JSON.stringify({ event })) } });

// A promise the input generator waits on until the answer has reached a point: the next user
// turn is sent only after the previous turn's usage event came back, which can only happen if
// both directions stream at once (a proxy that waited for the whole input would hang here).
function gate() {
  let open;
  const p = new Promise((r) => { open = r; });
  return { p, open };
}

async function* sonicInput(turns, gates, text, system = "You are a helpful assistant.") {
  const promptName = "p1";
  yield enc({ sessionStart: { inferenceConfiguration: { maxTokens: 1024, topP: 0.9, temperature: 0.7 } } });
  yield enc({ promptStart: { promptName, textOutputConfiguration: { mediaType: "text/plain" },
    audioOutputConfiguration: { mediaType: "audio/lpcm", sampleRateHertz: 24000, sampleSizeBits: 16,
      channelCount: 1, voiceId: "matthew", encoding: "base64", audioType: "SPEECH" } } });
  yield enc({ contentStart: { promptName, contentName: "sys", type: "TEXT", interactive: false,
    role: "SYSTEM", textInputConfiguration: { mediaType: "text/plain" } } });
  yield enc({ textInput: { promptName, contentName: "sys", content: system } });
  yield enc({ contentEnd: { promptName, contentName: "sys" } });
  for (let t = 0; t < turns; t++) {
    if (t % 2 === 0) {
      const contentName = `audio${t}`;
      yield enc({ contentStart: { promptName, contentName, type: "AUDIO", interactive: true, role: "USER",
        audioInputConfiguration: { mediaType: "audio/lpcm", sampleRateHertz: 16000, sampleSizeBits: 16,
          channelCount: 1, audioType: "SPEECH", encoding: "base64" } } });
      for (let i = 0; i < 3; i++)
        yield enc({ audioInput: { promptName, contentName, content: Buffer.alloc(3200).toString("base64") } });
      yield enc({ contentEnd: { promptName, contentName } });
    } else {
      const contentName = `text${t}`;
      yield enc({ contentStart: { promptName, contentName, type: "TEXT", interactive: true, role: "USER",
        textInputConfiguration: { mediaType: "text/plain" } } });
      yield enc({ textInput: { promptName, contentName, content: text } });
      yield enc({ contentEnd: { promptName, contentName } });
    }
    await gates[t].p;
  }
  yield enc({ promptEnd: { promptName } });
  yield enc({ sessionEnd: {} });
}

// Reads the answer; `onUsage(n)` after the n-th usage event. Returns what the SDK saw.
async function readSonic(r, gates, onUsage) {
  const seen = { usage: [], text: [], audio_bytes: 0, completion_end: null, events: 0 };
  for await (const ev of r.body) {
    if (!ev.chunk) continue;
    const e = JSON.parse(Buffer.from(ev.chunk.bytes).toString()).event;
    seen.events++;
    if (e.textOutput) seen.text.push(e.textOutput.content);
    if (e.audioOutput) seen.audio_bytes += Buffer.from(e.audioOutput.content, "base64").length;
    if (e.completionEnd) seen.completion_end = e.completionEnd.stopReason;
    if (e.usageEvent) {
      seen.usage.push(e.usageEvent);
      const n = seen.usage.length;
      if (gates[n - 1]) gates[n - 1].open();
      if (onUsage) onUsage(n);
    }
  }
  return seen;
}

function lastTotals(seen) {
  const u = seen.usage[seen.usage.length - 1];
  if (!u) return null;
  const t = u.details.total;
  return { speech_input: t.input.speechTokens, text_input: t.input.textTokens,
           speech_output: t.output.speechTokens, text_output: t.output.textTokens,
           input: u.totalInputTokens, output: u.totalOutputTokens };
}

// Two user turns (audio, then text), each sent only after the previous answer's usage event.
async function bidi(c) {
  const gates = [gate(), gate()];
  const r = await c.send(new InvokeModelWithBidirectionalStreamCommand({
    modelId: SONIC, body: sonicInput(2, gates, "hello there") }));
  const seen = await readSonic(r, gates);
  return { id: r.$metadata.requestId, usage_events: seen.usage.length, text: seen.text,
           audio_bytes: seen.audio_bytes, completion_end: seen.completion_end, totals: lastTotals(seen) };
}

// The client gives up after the first turn's usage event (AbortController: RST_STREAM).
async function bidi_abort(c) {
  const ac = new AbortController();
  const gates = [gate(), gate(), gate(), gate()];
  const r = await c.send(new InvokeModelWithBidirectionalStreamCommand({
    modelId: SONIC, body: sonicInput(4, gates, "hello there") }), { abortSignal: ac.signal });
  let error = null, usage = 0;
  try {
    // No gate is ever opened: nothing more is sent after the first turn. The SDK (3.1164) ends
    // the answer's iterator quietly after an abort rather than throwing AbortError.
    await readSonic(r, [], (n) => { usage = n; if (n === 1) ac.abort(); });
  } catch (e) {
    error = e.name;
  }
  gates.forEach((g) => g.open());
  return { id: r.$metadata.requestId, error, aborted: ac.signal.aborted, seen_usage: usage };
}

// The simulator breaks the answer off after the first usage event, as `directive` says.
async function bidiFault(c, directive) {
  const gates = [gate(), gate()];
  const r = await c.send(new InvokeModelWithBidirectionalStreamCommand({
    modelId: SONIC, body: sonicInput(2, gates, "hello there", `You are terse. SIM{${directive}}`) }));
  const seen = { usage: [] };
  let error = null, message = null;
  try {
    for await (const ev of r.body) {
      if (!ev.chunk) continue;
      const e = JSON.parse(Buffer.from(ev.chunk.bytes).toString()).event;
      if (e.usageEvent) { seen.usage.push(e.usageEvent); gates[seen.usage.length - 1].open(); }
    }
  } catch (e) {
    error = e.name;
    message = e.message;
  }
  gates.forEach((g) => g.open());
  return { id: r.$metadata.requestId, error, message, usage_events: seen.usage.length };
}

// modelStreamErrorException after the first usage event.
const bidi_exception = (c) => bidiFault(c, "fault=stream_exception,after=1");
// Bedrock resets the stream (RST_STREAM INTERNAL_ERROR) after the first usage event.
const bidi_cut = (c) => bidiFault(c, "fault=cut,after=1");

(async () => {
  const c = makeClient();
  const scenario = {
    operations, concurrent, multiplex, abort, bidi, bidi_abort, bidi_exception, bidi_cut,
  }[
    process.env.BM_SCENARIO || "operations"];
  try {
    const result = await scenario(c);
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    c.destroy();
  }
})().catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}\n${e.stack}\n`);
  process.exit(1);
});
