// The newest openai-node (7.59) calls against a running ImageForge: the gpt-image-2.5/2.6 ids, quality xhigh,
// complexity, gif and svg output (two gifs in one call), and a markup edit. Prints one JSON summary;
// tests/api/test_node_sdk.py checks it.
import { readFileSync } from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, picturePath, markupPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-node", maxRetries: 0 });
const file = (bytes, name) => toFile(bytes, name, { type: "image/png" });
const summary = (r) => ({ n: r.data.length, size: r.size, quality: r.quality, output_format: r.output_format,
                          b64: r.data.map((d) => d.b64_json), svg_usage: r.svg_usage ?? null });

const out = {};
out.xhigh = summary(await client.images.generate({
  model: "gpt-image-2.5-sunburst-2026-09-08", prompt: "a red apple", quality: "xhigh", size: "1024x1024",
}));
out.complexity = summary(await client.images.generate({
  model: "gpt-image-2.6-sunburst", prompt: "a blue heart", quality: "low", complexity: "high",
}));
out.gif = summary(await client.images.generate({
  model: "gpt-image-2.6-flare", prompt: "a red apple", quality: "low", output_format: "gif", frame_count: 3,
  frame_duration_ms: 150, n: 2,
}));
out.svg = summary(await client.images.generate({
  model: "gpt-image-2.5-flare", prompt: "a green leaf", quality: "low", output_format: "svg",
  svg: { model: "gpt-5", reasoning: { effort: "low" } },
}));
out.markup = summary(await client.images.edit({
  model: "gpt-image-2.6-sunburst", image: await file(readFileSync(picturePath), "picture.png"),
  markup: await file(readFileSync(markupPath), "markup.png"), prompt: "a red kite", quality: "low",
}));
process.stdout.write(JSON.stringify(out));
