// Drives the official openai-node SDK against a running ImageForge: edits (a file, a list, a mask, a stream
// with partial images) and variations. Prints one JSON summary; tests/api/test_node_sdk.py checks it.
import { readFileSync } from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, heartPath, maskPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-node", maxRetries: 0 });
const heart = readFileSync(heartPath);
const file = (bytes, name) => toFile(bytes, name, { type: "image/png" });
const summary = (r) => ({ n: r.data.length, size: r.size, b64: r.data.map((d) => d.b64_json), usage: r.usage });

const out = {};
out.one = summary(await client.images.edit({
  model: "gpt-image-1", image: await file(heart, "heart.png"), prompt: "a blue heart", quality: "low",
}));
out.list = summary(await client.images.edit({
  model: "gpt-image-1", image: [await file(heart, "heart.png")], prompt: "a red heart", quality: "low",
  output_format: "webp",
}));
out.masked = summary(await client.images.edit({
  model: "gpt-image-1", image: await file(heart, "heart.png"), mask: await file(readFileSync(maskPath), "mask.png"),
  prompt: "a blue heart", quality: "low", background: "transparent",
}));
const stream = await client.images.edit({
  model: "gpt-image-1", image: await file(heart, "heart.png"), prompt: "a red heart", quality: "low",
  stream: true, partial_images: 2,
});
out.events = [];
for await (const event of stream) {
  out.events.push({ type: event.type, index: event.partial_image_index ?? null, b64: event.b64_json,
                    usage: event.usage ?? null });
}
const square = readFileSync(heartPath);
out.variations = summary(await client.images.createVariation({
  image: await file(square, "heart.png"), n: 2, size: "256x256", response_format: "b64_json",
}));
process.stdout.write(JSON.stringify(out));
