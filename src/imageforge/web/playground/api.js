// The public API, as any OpenAI client calls it: Bearer key, JSON or multipart bodies, SSE streams.
// Errors keep the server's own words (error.message, param, code).

const KEY_STORAGE = "imageforge.playground.apiKey";

export function loadKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

export function saveKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key still works for this page's life
  }
}

export class ApiError extends Error {
  constructor(message, { status = null, type = null, param = null, code = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }
}

function headers(key, extra = {}) {
  const h = { ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page): fall back to the status line
  }
  const e = body && typeof body === "object" ? body.error : null;
  if (e && typeof e.message === "string") {
    return new ApiError(e.message, { status: response.status, type: e.type, param: e.param, code: e.code });
  }
  return new ApiError(`HTTP ${response.status} ${response.statusText}`.trim(), { status: response.status });
}

function networkError(err) {
  if (err.name === "AbortError") return err;
  return new ApiError(`Could not reach the server: ${err.message}`);
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw networkError(err);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function listModels(key) {
  const response = await send("/v1/models", { headers: headers(key) });
  const body = await response.json();
  return (body.data ?? []).map((m) => m.id).sort();
}

// One SSE event at a time: {type, data}. OpenAI's framing: `event:` then one `data:` line of JSON, a blank
// line between events, `:` comment lines as keep-alives.
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const event = parseBlock(block);
        if (event) yield event;
      }
    }
    const last = parseBlock(buffer);
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block) {
  let type = null;
  const data = [];
  for (const raw of block.split(/\r?\n/)) {
    if (!raw || raw.startsWith(":")) continue;
    const colon = raw.indexOf(":");
    const field = colon < 0 ? raw : raw.slice(0, colon);
    let value = colon < 0 ? "" : raw.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const payload = JSON.parse(data.join("\n"));
  return { type: payload.type ?? type, data: payload };
}

// POST a request; a stream's events go to `onEvent`, a JSON answer is returned. Throws ApiError.
export async function post(path, { key, json, form, signal, onEvent }) {
  const init = { method: "POST", signal, headers: headers(key) };
  if (form) init.body = form;
  else {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await send(path, init);
  const contentType = response.headers.get("content-type") ?? "";
  if (!contentType.startsWith("text/event-stream")) return response.json();
  for await (const event of readEvents(response)) {
    if (event.type === "error") {
      const e = event.data.error ?? {};
      throw new ApiError(e.message ?? "The stream reported an error.", { type: e.type, param: e.param, code: e.code });
    }
    onEvent(event);
  }
  return null;
}

export function base64ToBlob(b64, mime) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes], { type: mime });
}

export const MEDIA_TYPES = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };
export const EXTENSIONS = { png: "png", jpeg: "jpg", webp: "webp" };

export function formatOf(mime) {
  return Object.keys(MEDIA_TYPES).find((f) => MEDIA_TYPES[f] === mime) ?? "png";
}

// One image of a JSON answer as a Blob: b64_json, or a signed url (which needs no key).
export async function imageBlob(item, outputFormat) {
  if (item.b64_json) return base64ToBlob(item.b64_json, MEDIA_TYPES[outputFormat] ?? "image/png");
  if (item.url) {
    const response = await send(item.url, {});
    return response.blob();
  }
  throw new ApiError("The answer held no image.");
}
