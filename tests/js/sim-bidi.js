// A raw InvokeModelWithBidirectionalStream client on node's own http2 and crypto modules (no SDK,
// no node_modules), for tests/integration/test_simulator_direct.py: it signs the request with
// SigV4 (payload hash STREAMING-AWS4-HMAC-SHA256-EVENTS, `:authority` signed as the JS SDK does),
// wraps each Nova Sonic input event in a signed envelope (`:date`, `:chunk-signature`, chained
// from the request signature, as the SDK's EventSigningTransformStream does), and prints one JSON
// document with everything that came back.
//
//   node tests/js/sim-bidi.js '<plan JSON>'
//
// plan: {
//   "endpoint": "http://127.0.0.1:PORT" (h2c, prior knowledge) or "https://..." (ALPN h2),
//   "region": "us-east-1", "model": "amazon.nova-sonic-v1:0",
//   "auth": "sigv4" | "bearer" | "none", "akid", "secret", "bearer",
//   "sign": "envelope" (default) | "bare" (inner messages only) | "bad:N" (event N's signature
//           corrupted, 1-based),
//   "steps": [ {"event": {<name>: {...}}}           send one input event,
//              {"audio": {"promptName","contentName","bytes":N}}  an audioInput of N bytes,
//              {"wait": "usageEvent", "count": K}  wait until K usageEvents have arrived,
//              {"end": true}                      END_STREAM (half-close the request) ],
//   "close_after_first_event": false   (RST the stream once the first output event arrives)
// }
// output: {"status", "headers", "events": [{"type": "event"|"exception", "name", "body"}],
//          "rst": code or null, "error": message or null, "sent": N}
"use strict";
const http2 = require("node:http2");
const crypto = require("node:crypto");

const plan = JSON.parse(process.argv[2] || "{}");
const region = plan.region || "us-east-1";
const model = plan.model || "amazon.nova-sonic-v1:0";

// --- event-stream framing ---
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function header(name, type, value) {
  const n = Buffer.from(name);
  if (type === 7) {  // string
    const v = Buffer.from(value);
    const len = Buffer.alloc(2); len.writeUInt16BE(v.length);
    return Buffer.concat([Buffer.from([n.length]), n, Buffer.from([7]), len, v]);
  }
  if (type === 6) {  // byte array
    const len = Buffer.alloc(2); len.writeUInt16BE(value.length);
    return Buffer.concat([Buffer.from([n.length]), n, Buffer.from([6]), len, value]);
  }
  const ts = Buffer.alloc(8); ts.writeBigInt64BE(BigInt(value));  // 8: timestamp, ms
  return Buffer.concat([Buffer.from([n.length]), n, Buffer.from([8]), ts]);
}
function frame(headers, payload) {
  const total = 16 + headers.length + payload.length;
  const prelude = Buffer.alloc(12);
  prelude.writeUInt32BE(total, 0);
  prelude.writeUInt32BE(headers.length, 4);
  prelude.writeUInt32BE(crc32(prelude.subarray(0, 8)), 8);
  const body = Buffer.concat([prelude, headers, payload]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
  return Buffer.concat([body, crc]);
}
function parseFrames(buf, out) {
  while (buf.length >= 12) {
    const total = buf.readUInt32BE(0);
    if (buf.length < total) break;
    const hlen = buf.readUInt32BE(4);
    const headers = {};
    let h = buf.subarray(12, 12 + hlen);
    while (h.length > 0) {
      const nl = h[0];
      const name = h.subarray(1, 1 + nl).toString();
      const type = h[1 + nl];
      h = h.subarray(2 + nl);
      if (type === 7 || type === 6) {
        const l = h.readUInt16BE(0);
        headers[name] = type === 7 ? h.subarray(2, 2 + l).toString() : h.subarray(2, 2 + l);
        h = h.subarray(2 + l);
      } else {
        throw new Error("unexpected header type " + type);
      }
    }
    out.push({ headers, payload: buf.subarray(12 + hlen, total - 4) });
    buf = buf.subarray(total);
  }
  return buf;
}

// --- signing ---
const sha256hex = (d) => crypto.createHash("sha256").update(d).digest("hex");
const hmac = (k, d) => crypto.createHmac("sha256", k).update(d).digest();
function dates(ms) {
  const iso = new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { long: iso, short: iso.slice(0, 8) };
}
function signingKey(secret, short) {
  return hmac(hmac(hmac(hmac("AWS4" + secret, short), region), "bedrock"), "aws4_request");
}
function signRequest(path, authority, secret, akid) {
  const { long, short } = dates(Date.now());
  const hdrs = {
    ":authority": authority,
    "content-type": "application/vnd.amazon.eventstream",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-EVENTS",
    "x-amz-date": long,
  };
  const names = Object.keys(hdrs).sort();
  // AWS SDKs encode each path segment once more for the canonical URI (%3A signs as %253A).
  const canonicalUri = path.split("/").map((s) => encodeURIComponent(s)).join("/");
  const canonical = ["POST", canonicalUri, "", names.map((n) => `${n}:${hdrs[n]}\n`).join(""),
                     names.join(";"), "STREAMING-AWS4-HMAC-SHA256-EVENTS"].join("\n");
  const scope = `${short}/${region}/bedrock/aws4_request`;
  const sts = ["AWS4-HMAC-SHA256", long, scope, sha256hex(canonical)].join("\n");
  const signature = hmac(signingKey(secret, short), sts).toString("hex");
  hdrs.authorization = `AWS4-HMAC-SHA256 Credential=${akid}/${scope}, ` +
                       `SignedHeaders=${names.join(";")}, Signature=${signature}`;
  delete hdrs[":authority"];  // node sends it from the connection's URL
  return { headers: hdrs, signature };
}
function eventSignature(secret, ms, prior, payload) {
  const { long, short } = dates(ms);
  const dateBlock = header(":date", 8, ms);
  const sts = ["AWS4-HMAC-SHA256-PAYLOAD", long, `${short}/${region}/bedrock/aws4_request`, prior,
               sha256hex(dateBlock), sha256hex(payload)].join("\n");
  return hmac(signingKey(secret, short), sts).toString("hex");
}

// --- the Nova Sonic input event ---
function inner(eventObj) {
  const bytes = Buffer.from(JSON.stringify({ event: eventObj })).toString("base64");
  const hs = Buffer.concat([header(":event-type", 7, "chunk"),
                            header(":content-type", 7, "application/json"),
                            header(":message-type", 7, "event")]);
  return frame(hs, Buffer.from(JSON.stringify({ bytes })));
}

async function main() {
  const result = { status: null, headers: {}, events: [], rst: null, error: null, sent: 0 };
  const url = new URL(plan.endpoint);
  const session = http2.connect(plan.endpoint, { rejectUnauthorized: false });
  session.on("error", (e) => { result.error = result.error || String(e.message || e); });
  const path = `/model/${encodeURIComponent(model)}/invoke-with-bidirectional-stream`;
  let headers = { "content-type": "application/vnd.amazon.eventstream",
                  "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-EVENTS" };
  let prior = "";
  if (plan.auth === "sigv4") {
    const signed = signRequest(path, url.host, plan.secret, plan.akid);
    headers = signed.headers;
    prior = signed.signature;
  } else if (plan.auth === "bearer") {
    headers.authorization = `Bearer ${plan.bearer}`;
  }
  const req = session.request({ ":method": "POST", ":path": path, ...headers });
  let pending = Buffer.alloc(0);
  let usage = 0;
  let waiter = null;
  const done = new Promise((resolve) => {
    req.on("response", (h) => {
      result.status = h[":status"];
      for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) result.headers[k] = v;
    });
    const raw = [];  // a refusal's JSON body
    req.on("data", (chunk) => {
      if (result.status !== 200) { raw.push(chunk); return; }
      const frames = [];
      pending = parseFrames(Buffer.concat([pending, chunk]), frames);
      for (const f of frames) {
        const type = f.headers[":message-type"];
        if (type === "event") {
          const ev = JSON.parse(Buffer.from(JSON.parse(f.payload.toString()).bytes, "base64")
                                    .toString()).event;
          const name = Object.keys(ev)[0];
          result.events.push({ type, name, body: ev[name] });
          if (name === "usageEvent") usage++;
        } else {
          result.events.push({ type, name: f.headers[":exception-type"],
                               body: JSON.parse(f.payload.toString()) });
        }
        if (plan.close_after_first_event && result.events.length === 1) {
          req.close(http2.constants.NGHTTP2_CANCEL);
        }
      }
      if (waiter) waiter();
    });
    req.on("end", () => {
      if (raw.length) result.body = JSON.parse(Buffer.concat(raw).toString());
      resolve();
    });
    req.on("close", () => { result.rst = req.rstCode || null; resolve(); });
    req.on("error", (e) => { result.error = result.error || String(e.message || e); resolve(); });
  });

  const sign = plan.sign || "envelope";
  const badAt = sign.startsWith("bad:") ? Number(sign.slice(4)) : 0;
  let n = 0;
  for (const step of plan.steps || []) {
    if (req.closed || req.destroyed) break;
    if (step.wait) {
      const want = step.count || 1;
      await new Promise((resolve) => {
        const check = () => { if (usage >= want || req.closed) { waiter = null; resolve(); } };
        waiter = check;
        req.once("close", check);
        check();
      });
      continue;
    }
    if (step.end) { req.end(); continue; }
    let eventObj = step.event;
    if (step.audio) {
      const { promptName, contentName, bytes } = step.audio;
      eventObj = { audioInput: { promptName, contentName,
                                 content: Buffer.alloc(bytes, 1).toString("base64") } };
    }
    const msg = inner(eventObj);
    n++;
    let out = msg;
    if (sign !== "bare") {
      const ms = Date.now();
      let sig = eventSignature(plan.secret || "", ms, prior, msg);
      prior = sig;
      if (n === badAt) sig = sha256hex("not the signature");
      out = frame(Buffer.concat([header(":date", 8, ms),
                                 header(":chunk-signature", 6, Buffer.from(sig, "hex"))]), msg);
    }
    req.write(out);
    result.sent = n;
  }
  const timer = setTimeout(() => { result.error = result.error || "timeout"; req.close(); }, 15000);
  await done;
  clearTimeout(timer);
  session.close();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) }) + "\n");
  process.exitCode = 1;
});
