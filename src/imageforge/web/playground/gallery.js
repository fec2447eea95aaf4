// This browser's results, kept in IndexedDB: each image's bytes (a Blob) with its prompt and parameters.

import { EXTENSIONS } from "./api.js";

const DB_NAME = "imageforge-playground";
const STORE = "images";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let dbPromise = null;

function open() {
  if (!dbPromise) {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(STORE, { keyPath: "id" });
    };
    dbPromise = request(req);
  }
  return dbPromise;
}

async function store(mode) {
  const db = await open();
  return db.transaction(STORE, mode).objectStore(STORE);
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// entry: {blob, prompt, kind: "generation"|"edit", params: {...}, revisedPrompt, parentId}
export async function addImage(entry) {
  const record = { id: newId(), created: Date.now(), ...entry };
  await request((await store("readwrite")).put(record));
  return record;
}

export async function allImages() {
  const records = await request((await store("readonly")).getAll());
  return records.sort((a, b) => b.created - a.created);
}

export async function getImage(id) {
  return request((await store("readonly")).get(id));
}

export async function deleteImage(id) {
  await request((await store("readwrite")).delete(id));
}

export function fileName(record) {
  const ext = EXTENSIONS[record.params.output_format] ?? "png";
  const stem = (record.prompt || "image")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 40);
  return `${stem || "image"}-${record.id.slice(0, 6)}.${ext}`;
}

const SHOWN = ["model", "size", "quality", "background", "output_format", "output_compression"];

export function describe(record) {
  const p = record.params;
  const parts = SHOWN.filter((k) => p[k] !== undefined && p[k] !== null && p[k] !== "").map(
    (k) => `${k.replace("output_", "")}: ${p[k]}`,
  );
  if (record.kind === "edit") parts.unshift(record.masked ? "masked edit" : "edit");
  return parts.join(" · ");
}

// Renders the gallery into `list`; `actions.edit(record)` and `actions.remove(record)` are the buttons.
export class GalleryView {
  constructor(list, empty, template, actions) {
    this.list = list;
    this.empty = empty;
    this.template = template;
    this.actions = actions;
    this.urls = new Map();
  }

  async refresh() {
    const records = await allImages();
    for (const url of this.urls.values()) URL.revokeObjectURL(url);
    this.urls.clear();
    this.list.replaceChildren(...records.map((r) => this.card(r)));
    this.empty.hidden = records.length > 0;
  }

  url(record) {
    if (!this.urls.has(record.id)) this.urls.set(record.id, URL.createObjectURL(record.blob));
    return this.urls.get(record.id);
  }

  card(record) {
    const li = this.template.content.firstElementChild.cloneNode(true);
    const url = this.url(record);
    li.dataset.id = record.id;
    li.setAttribute("aria-label", `Image: ${record.prompt}`);
    const img = li.querySelector("img");
    img.src = url;
    img.alt = record.prompt;
    img.dataset.galleryImage = "";
    li.querySelector(".thumb").href = url;
    const promptText = li.querySelector(".card-prompt");
    promptText.textContent = record.prompt;
    promptText.id = `prompt-${record.id}`;
    for (const control of li.querySelectorAll(".card-actions > *")) {
      control.setAttribute("aria-describedby", promptText.id); // "Edit" says which image to a screen reader
    }
    const revised = li.querySelector(".card-revised");
    if (record.revisedPrompt && record.revisedPrompt !== record.prompt) {
      revised.hidden = false;
      revised.textContent = `Revised prompt: ${record.revisedPrompt}`;
    }
    li.querySelector(".card-params").textContent = describe(record);
    const download = li.querySelector(".download");
    download.href = url;
    download.download = fileName(record);
    li.querySelector(".edit").addEventListener("click", () => this.actions.edit(record));
    li.querySelector(".delete").addEventListener("click", () => this.actions.remove(record));
    return li;
  }
}
