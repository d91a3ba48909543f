// Drives pier with the AWS SDK for JavaScript v3 (@aws-sdk/client-ecr-public): it signs, retries and
// parses errors its own way, not botocore's. tests/api/test_js_sdk.py runs it.
//
// Standard input, one JSON document:
//   {"endpoint": "http://127.0.0.1:PORT", "accessKeyId": "...", "secretAccessKey": "...",
//    "calls": [{"op": "CreateRepository", "input": {...}}, {"op": "DescribeImages", "input": {...},
//              "paginate": {"pageSize": 2}}, ...]}
// Bytes in an input are {"$base64": "..."}. Standard output, one JSON document: a result per call, in
// order, each {"ok": true, "output": {...}} (or "pages": [...] when paginated) or {"ok": false, "error":
// {"name", "status", "message", "fault", "attempts", "code"}}. Bytes come back as {"$base64": ...} and
// dates as seconds since the epoch.
import * as sdk from "@aws-sdk/client-ecr-public";

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (typeof value.$base64 === "string") return Buffer.from(value.$base64, "base64");
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

function encode(value) {
  if (value instanceof Uint8Array) return { $base64: Buffer.from(value).toString("base64") };
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k, v]) => k !== "$metadata" && v !== undefined)
        .map(([k, v]) => [k, encode(v)]),
    );
  }
  return value;
}

function failure(error) {
  return {
    ok: false,
    error: {
      name: error.name,
      status: error.$metadata?.httpStatusCode ?? null,
      message: error.message,
      fault: error.$fault ?? null,
      attempts: error.$metadata?.attempts ?? null,
      code: error.code ?? null, // a Node.js socket error (EPIPE, ECONNRESET) has one; a service error has not
    },
  };
}

async function call(client, { op, input, paginate }) {
  try {
    if (paginate) {
      const pages = [];
      for await (const page of sdk[`paginate${op}`]({ client, ...paginate }, decode(input ?? {}))) {
        pages.push(encode(page));
      }
      return { ok: true, pages };
    }
    const Command = sdk[`${op}Command`];
    if (!Command) throw new Error(`no such operation: ${op}`);
    const output = await client.send(new Command(decode(input ?? {})));
    return { ok: true, output: encode(output), status: output.$metadata.httpStatusCode };
  } catch (error) {
    return failure(error);
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const client = new sdk.ECRPUBLICClient({
    endpoint: request.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: request.accessKeyId, secretAccessKey: request.secretAccessKey },
    maxAttempts: 3,
  });
  const results = [];
  for (const one of request.calls) results.push(await call(client, one));
  client.destroy();
  process.stdout.write(JSON.stringify(results));
}

await main();
