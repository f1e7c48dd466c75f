// The AWS SDK for JavaScript v3's own InvokeModelWithBidirectionalStreamCommand against
// bedrock-sim (its default NodeHttp2Handler, its SigV4 and its EventSigningTransformStream), for
// tests/integration/test_simulator_direct.py: one text turn, then sessionEnd once the turn's
// usageEvent arrived (full duplex). Prints {"names": [...], "usage": <last usageEvent>, "id"}.
//   node tests/js/sim-bidi-sdk.js PORT AKID SECRET
"use strict";
const {
  BedrockRuntimeClient, InvokeModelWithBidirectionalStreamCommand,
} = require("@aws-sdk/client-bedrock-runtime");

const [port, akid, secret] = process.argv.slice(2);
const client = new BedrockRuntimeClient({
  endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", maxAttempts: 1,
  credentials: { accessKeyId: akid, secretAccessKey: secret },
});
const chunk = (event) => ({ chunk: { bytes: Buffer.from(JSON.stringify({ event })) } });
let usageArrived;
const firstUsage = new Promise((resolve) => { usageArrived = resolve; });

async function* input() {
  yield chunk({ sessionStart: { inferenceConfiguration: { maxTokens: 1024 } } });
  yield chunk({ promptStart: { promptName: "p" } });
  yield chunk({ contentStart: { promptName: "p", contentName: "c", type: "TEXT", role: "USER",
                                interactive: true } });
  yield chunk({ textInput: { promptName: "p", contentName: "c", content: "hello there" } });
  yield chunk({ contentEnd: { promptName: "p", contentName: "c" } });
  await firstUsage;
  yield chunk({ promptEnd: { promptName: "p" } });
  yield chunk({ sessionEnd: {} });
}

(async () => {
  const r = await client.send(new InvokeModelWithBidirectionalStreamCommand({
    modelId: "amazon.nova-sonic-v1:0", body: input(),
  }));
  const out = { names: [], usage: null, id: r.$metadata.requestId };
  for await (const ev of r.body) {
    const event = JSON.parse(Buffer.from(ev.chunk.bytes).toString()).event;
    const name = Object.keys(event)[0];
    out.names.push(name);
    if (name === "usageEvent") {
      out.usage = event[name];
      usageArrived();
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  process.stdout.write(JSON.stringify({ error: `${e.name}: ${e.message}` }) + "\n");
  process.exitCode = 1;
});
