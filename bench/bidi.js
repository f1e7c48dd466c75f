// Nova Sonic sessions (InvokeModelWithBidirectionalStream over HTTP/2) driven by the AWS SDK for
// JavaScript v3's own command, straight to bedrock-sim and through bedrock-meter, alternated
// (direct, proxy, direct, proxy, ...) in one process so both sides share the machine's noise.
// Each session sends its turns one at a time (contentStart, textInput, contentEnd) and sends the
// next only once the previous turn's usageEvent came back, so a turn's round trip is what a voice
// client waits for: its input relayed and verified/re-signed one way, the answer's events relayed
// the other. Prints one JSON object (milliseconds) on stdout.
//
//   node bench/bidi.js --direct URL --proxy URL --akid AKID --secret SECRET
//                      [--sessions N] [--turns K] [--concurrency C] [--rounds R]
// The SDK comes from tests/js/node_modules (scripts/install-deps runs npm ci there).
"use strict";
const path = require("path");
const { performance } = require("perf_hooks");
const {
  BedrockRuntimeClient, InvokeModelWithBidirectionalStreamCommand,
} = require(path.join(__dirname, "..", "tests", "js", "node_modules", "@aws-sdk", "client-bedrock-runtime"));

const SONIC = "amazon.nova-sonic-v1:0";

const REQUIRED = ["direct", "proxy", "akid", "secret"];  // text; the other options are numbers

function options(argv) {
  const o = { sessions: 20, turns: 5, concurrency: 4, rounds: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    const text = REQUIRED.includes(key);
    if (!text && !(key in o)) throw new Error(`unknown option ${argv[i]}`);
    o[key] = text ? argv[i + 1] : Number(argv[i + 1]);
  }
  for (const need of REQUIRED)
    if (!o[need]) throw new Error(`--${need} is required`);
  return o;
}

// What one side measured, in ms.
const tally = () => ({ open: [], first: [], usage: [], sessions: 0, errors: 0, last_error: null });

const enc = (event) => ({ chunk: { bytes: Buffer.from(JSON.stringify({ event })) } });

function gate() {
  let open;
  const p = new Promise((r) => { open = r; });
  return { p, open };
}

// One session: returns {open, first: [..], usage: [..]} in ms, or throws.
async function session(client, turns) {
  const gates = [...Array(turns)].map(gate);
  const sent = [];
  const promptName = "p";
  async function* input() {
    yield enc({ sessionStart: { inferenceConfiguration: { maxTokens: 1024, topP: 0.9, temperature: 0.7 } } });
    yield enc({ promptStart: { promptName, textOutputConfiguration: { mediaType: "text/plain" } } });
    for (let t = 0; t < turns; t++) {
      const contentName = `t${t}`;
      yield enc({ contentStart: { promptName, contentName, type: "TEXT", interactive: true, role: "USER",
                                  textInputConfiguration: { mediaType: "text/plain" } } });
      yield enc({ textInput: { promptName, contentName, content: "what is the weather like today" } });
      yield enc({ contentEnd: { promptName, contentName } });
      // Resumed once the SDK took contentEnd to write it: the turn is on its way.
      sent.push(performance.now());
      await gates[t].p;
    }
    yield enc({ promptEnd: { promptName } });
    yield enc({ sessionEnd: {} });
  }
  const t0 = performance.now();
  const r = await client.send(new InvokeModelWithBidirectionalStreamCommand({ modelId: SONIC, body: input() }));
  const open = performance.now() - t0;
  const first = [], usage = [];
  for await (const ev of r.body) {
    if (!ev.chunk) continue;
    const now = performance.now();
    const turn = usage.length;
    if (turn < turns && first.length === turn && sent.length > turn) first.push(now - sent[turn]);
    const e = JSON.parse(Buffer.from(ev.chunk.bytes).toString()).event;
    if (e.usageEvent && turn < turns && sent.length > turn) {
      usage.push(now - sent[turn]);
      gates[turn].open();
    }
  }
  if (usage.length !== turns) throw new Error(`${usage.length} of ${turns} turns answered`);
  return { open, first, usage };
}

async function run(client, o, into) {
  let next = 0;
  const worker = async () => {
    while (next < o.sessions) {
      next++;
      try {
        const s = await session(client, o.turns);
        into.open.push(s.open);
        into.first.push(...s.first);
        into.usage.push(...s.usage);
        into.sessions++;
      } catch (e) {
        into.errors++;
        into.last_error = `${e.name}: ${e.message}`;
      }
    }
  };
  await Promise.all([...Array(o.concurrency)].map(worker));
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

(async () => {
  const o = options(process.argv.slice(2));
  const client = (endpoint, akid, secret) => new BedrockRuntimeClient({
    endpoint, region: "us-east-1", maxAttempts: 1, credentials: { accessKeyId: akid, secretAccessKey: secret },
  });
  const sides = {
    direct: { client: client(o.direct, "AKIDBENCHDIRECT", "unused-by-a-no-auth-simulator") },
    proxy: { client: client(o.proxy, o.akid, o.secret) },
  };
  for (const s of Object.values(sides)) Object.assign(s, tally());
  // Warm-up: the SDK's modules, the simulator and the proxy's first HTTP/2 client session.
  for (const s of Object.values(sides)) await run(s.client, { ...o, sessions: 2, concurrency: 1 }, tally());
  for (let round = 0; round < o.rounds; round++)
    for (const name of ["direct", "proxy"]) await run(sides[name].client, o, sides[name]);
  const out = { sessions_per_side: o.sessions * o.rounds, turns: o.turns, concurrency: o.concurrency };
  for (const [name, s] of Object.entries(sides)) {
    out[name] = { sessions: s.sessions, errors: s.errors, last_error: s.last_error,
                  open_p50: pct(s.open, 50), open_p99: pct(s.open, 99),
                  first_p50: pct(s.first, 50), first_p99: pct(s.first, 99),
                  turn_p50: pct(s.usage, 50), turn_p99: pct(s.usage, 99) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);  // the SDK keeps idle HTTP/2 sessions open
})().catch((e) => {
  process.stderr.write(`bidi bench: ${e.stack || e}\n`);
  process.exit(1);
});
