// driver.mjs runs one unmodified Cloud API SDK from npm against openwaba,
// for the Go test e2e/cloud_test.go (TestCloudSDKs), which starts it and
// talks to it in JSON lines:
//
//   stdin:  {"id":1,"op":"sendText","args":{…}}         one command per line
//   stdout: {"id":1,"ok":true,"result":…}                the SDK's answer
//           {"id":1,"ok":false,"error":"…","body":…}     what the SDK threw
//           {"event":"ready","webhook":"http://…"}        once, at start
//           {"event":"webhook","verified":true,"body":…,"parsed":…}
//                                                        every POST received
//
// The webhook server answers Meta's subscription check and checks every
// POST's X-Hub-Signature-256 with the SDK's own function (Kapso's
// verifySignature, whatsapp-api-js's post); a POST that fails is answered
// 401 and reported with verified false.
//
// Environment: SDK (kapso | whatsapp-api-js), OPENWABA_URL (https origin),
// TOKEN (a per-number API key), APP_SECRET, VERIFY_TOKEN, GRAPH_VERSION;
// NODE_EXTRA_CA_CERTS names the webapp's certificate.

import http from "node:http";
import readline from "node:readline";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const sdk = env("SDK");
const origin = env("OPENWABA_URL");
const token = env("TOKEN");
const appSecret = env("APP_SECRET");
const verifyToken = env("VERIFY_TOKEN");
const version = env("GRAPH_VERSION");

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

let ops; // name → async (args) => result
let onWebhook; // async (raw, signature) => {verified, parsed}

if (sdk === "kapso") {
  const { WhatsAppClient } = await import("@kapso/whatsapp-cloud-api");
  const { verifySignature, normalizeWebhook } = await import("@kapso/whatsapp-cloud-api/server");
  const client = new WhatsAppClient({ baseUrl: origin, graphVersion: version, accessToken: token });
  ops = {
    sendText: (a) => client.messages.sendText(a),
    sendImage: (a) => client.messages.sendImage(a),
    sendTemplate: (a) => client.messages.sendTemplate(a),
    sendInteractiveButtons: (a) => client.messages.sendInteractiveButtons(a),
    sendReaction: (a) => client.messages.sendReaction(a),
    markRead: (a) => client.messages.markRead(a),
    upload: async (a) => client.media.upload({ ...a, file: new Blob([Buffer.from(a.file, "base64")], { type: a.type }) }),
    mediaGet: (a) => client.media.get(a),
    download: async (a) => Buffer.from(await client.media.download(a)).toString("base64"),
    mediaDelete: (a) => client.media.delete(a),
    templateCreate: (a) => client.templates.create(a),
    templateList: (a) => client.templates.list(a),
    templateGet: (a) => client.templates.get(a),
    templateDelete: (a) => client.templates.delete(a),
    phoneNumber: (a) => client.request("GET", a.phoneNumberId, { responseType: "json" }),
    profileUpdate: (a) => client.phoneNumbers.businessProfile.update(a),
    profileGet: (a) => client.phoneNumbers.businessProfile.get(a),
  };
  onWebhook = async (raw, signature) => {
    const verified = verifySignature({ appSecret, rawBody: raw, signatureHeader: signature });
    return { verified, parsed: verified ? normalizeWebhook(JSON.parse(raw.toString("utf8"))) : undefined };
  };
} else if (sdk === "whatsapp-api-js") {
  const { WhatsAppAPI } = await import("whatsapp-api-js");
  const { NodeNext } = await import("whatsapp-api-js/setup/node");
  const M = await import("whatsapp-api-js/messages");
  // The Graph origin is fixed in this SDK: its documented ponyfill.fetch
  // sends its requests to openwaba instead.
  const graph = "https://graph.facebook.com";
  const redirect = (url, init) => {
    const u = String(url);
    return fetch(u.startsWith(graph) ? origin + u.slice(graph.length) : u, init);
  };
  const api = new WhatsAppAPI(NodeNext({ token, appSecret, webhookVerifyToken: verifyToken, v: version, secure: true, ponyfill: { fetch: redirect } }));
  let last; // what the emitters saw of the last POST
  api.on.message = ({ phoneID, from, message }) => { last = { kind: "message", phoneID, from, id: message.id, type: message.type }; };
  api.on.status = ({ phoneID, id, status, error }) => { last = { kind: "status", phoneID, id, status, error }; };
  const answer = (r) => {
    if (r && r.error) {
      const e = new Error(r.error.message);
      e.body = r;
      throw e;
    }
    return r;
  };
  const build = {
    text: (a) => new M.Text(a.body),
    image: (a) => new M.Image(a.id, true, a.caption),
    template: (a) => new M.Template(a.name, new M.Language(a.language), ...(a.bodyParams?.length ? [new M.BodyComponent(...a.bodyParams.map((p) => new M.BodyParameter(p)))] : [])),
    buttons: (a) => new M.Interactive(new M.ActionButtons(...a.buttons.map((b) => new M.Button(b.id, b.title))), new M.Body(a.body)),
    reaction: (a) => new M.Reaction(a.messageId, a.emoji),
  };
  ops = {
    send: async (a) => answer(await api.sendMessage(a.phoneNumberId, a.to, build[a.type](a.message), a.context, a.callbackData)),
    markRead: async (a) => answer(await api.markAsRead(a.phoneNumberId, a.messageId)),
    upload: async (a) => {
      const form = new FormData();
      form.append("file", new Blob([Buffer.from(a.file, "base64")], { type: a.type }), a.fileName);
      return answer(await api.uploadMedia(a.phoneNumberId, form));
    },
    mediaGet: async (a) => answer(await api.retrieveMedia(a.mediaId)),
    download: async (a) => {
      const meta = answer(await api.retrieveMedia(a.mediaId));
      const res = await api.fetchMedia(meta.url);
      if (!res.ok) throw new Error(`fetchMedia answered ${res.status}`);
      return Buffer.from(await res.arrayBuffer()).toString("base64");
    },
    mediaDelete: async (a) => answer(await api.deleteMedia(a.mediaId)),
  };
  onWebhook = async (raw, signature) => {
    last = undefined;
    try {
      await api.post(JSON.parse(raw.toString("utf8")), raw.toString("utf8"), signature);
    } catch (e) {
      return { verified: false, error: String(e) };
    }
    return { verified: true, parsed: last };
  };
} else {
  throw new Error(`unknown SDK ${sdk}`);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "GET") {
    // Meta's subscription check.
    const ok = url.searchParams.get("hub.mode") === "subscribe" && url.searchParams.get("hub.verify_token") === verifyToken;
    out({ event: "challenge", ok });
    res.writeHead(ok ? 200 : 403, { "Content-Type": "text/plain" });
    res.end(ok ? url.searchParams.get("hub.challenge") : "bad verify token");
    return;
  }
  if (!req.headers["content-length"]) {
    // As whatsapp-api-js's own middleware, which refuses such a POST.
    out({ event: "webhook", verified: false, error: "no Content-Length" });
    res.writeHead(411).end();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const raw = Buffer.concat(chunks);
    const r = await onWebhook(raw, req.headers["x-hub-signature-256"]);
    out({ event: "webhook", verified: r.verified, error: r.error, ascii: /^[\x20-\x7e]*$/.test(raw.toString("latin1")), body: raw.toString("utf8"), parsed: r.parsed });
    res.writeHead(r.verified ? 200 : 401).end();
  });
});
server.listen(0, "127.0.0.1", () => out({ event: "ready", webhook: `http://127.0.0.1:${server.address().port}/hook` }));

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
    const op = ops[cmd.op];
    if (!op) throw new Error(`unknown op ${cmd.op} for ${sdk}`);
    out({ id: cmd.id, ok: true, result: await op(cmd.args ?? {}) });
  } catch (e) {
    out({ id: cmd?.id, ok: false, error: String(e?.message ?? e), code: e?.code ?? e?.body?.error?.code, httpStatus: e?.httpStatus, body: e?.body });
  }
});
rl.on("close", () => server.close());
