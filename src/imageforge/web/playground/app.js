// The playground: a form over POST /v1/images/generations (streamed, with live previews), a gallery kept in
// this browser, and masked edits through POST /v1/images/edits. Only the public API is used.

import {
  ApiError,
  MEDIA_TYPES,
  EXTENSIONS,
  formatOf,
  base64ToBlob,
  imageBlob,
  listModels,
  loadKey,
  post,
  saveKey,
} from "./api.js";
import { GalleryView, addImage, deleteImage } from "./gallery.js";
import { MaskPainter } from "./mask.js";

const SETTINGS_STORAGE = "imageforge.playground.settings";
const SETTINGS = ["model", "size", "quality", "background", "output-format", "compression", "n", "partial-images"];
const PREFERRED_MODEL = "gpt-image-1";

const $ = (id) => document.getElementById(id);
const el = {
  key: $("api-key"),
  form: $("generate-form"),
  prompt: $("prompt"),
  model: $("model"),
  size: $("size"),
  quality: $("quality"),
  background: $("background"),
  format: $("output-format"),
  compression: $("compression"),
  n: $("n"),
  partials: $("partial-images"),
  hint: $("mode-hint"),
  generate: $("generate"),
  cancel: $("cancel"),
  error: $("generate-error"),
  status: $("generate-status"),
  previewBox: $("generate-preview-box"),
  preview: $("generate-preview"),
  previewCaption: $("generate-preview-caption"),
  dialog: $("edit-dialog"),
  editForm: $("edit-form"),
  editSource: $("edit-source"),
  maskCanvas: $("mask-canvas"),
  brush: $("brush"),
  clearMask: $("clear-mask"),
  editPrompt: $("edit-prompt"),
  editSubmit: $("edit-submit"),
  editCancel: $("edit-cancel"),
  editClose: $("edit-close"),
  editError: $("edit-error"),
  editStatus: $("edit-status"),
  editPreviewBox: $("edit-preview-box"),
  editPreview: $("edit-preview"),
  editPreviewCaption: $("edit-preview-caption"),
};

// ---- small helpers -----------------------------------------------------------------------------------------

function node(tag, className, text) {
  const n = document.createElement(tag);
  n.className = className;
  n.textContent = text;
  return n;
}

function showError(box, err) {
  const details = [];
  if (err.status) details.push(`HTTP ${err.status}`);
  if (err.type) details.push(`type: ${err.type}`);
  if (err.param) details.push(`param: ${err.param}`);
  if (err.code) details.push(`code: ${err.code}`);
  box.replaceChildren(node("p", "error-message", err.message));
  if (details.length) box.append(node("p", "error-detail", details.join(" · ")));
  box.hidden = false;
}

function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

// A number field: omitted when empty (the server's default), the raw text when not a number (the server names it).
function numberField(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

// DALL·E models take no streaming and none of the GPT output fields, and answer url unless asked for b64_json.
const isDalle = (model) => /^dall-e/i.test(model);

function saveSettings() {
  const values = Object.fromEntries(SETTINGS.map((id) => [id, $(id).value]));
  try {
    localStorage.setItem(SETTINGS_STORAGE, JSON.stringify(values));
  } catch {
    // storage disabled
  }
}

function restoreSettings() {
  let values = {};
  try {
    values = JSON.parse(localStorage.getItem(SETTINGS_STORAGE) ?? "{}") ?? {};
  } catch {
    values = {};
  }
  for (const id of SETTINGS) {
    if (id !== "model" && typeof values[id] === "string") $(id).value = values[id];
  }
  return values;
}

// ---- models and the form's modes ---------------------------------------------------------------------------

let modelsRequest = 0;

async function loadModels() {
  const ticket = ++modelsRequest;
  const wanted = el.model.value || restoredSettings.model || PREFERRED_MODEL;
  try {
    const ids = await listModels(el.key.value.trim());
    if (ticket !== modelsRequest) return;
    el.model.replaceChildren(...ids.map((id) => new Option(id, id)));
    el.model.value = ids.includes(wanted) ? wanted : ids.includes(PREFERRED_MODEL) ? PREFERRED_MODEL : ids[0];
    clearError(el.error);
  } catch (err) {
    if (ticket !== modelsRequest) return;
    el.model.replaceChildren(new Option("(models unavailable)", ""));
    showError(el.error, err);
  }
  updateMode();
}

// What the next request will be, for the current model and n.
function mode() {
  const model = el.model.value;
  const n = numberField(el.n) ?? 1;
  const dalle = isDalle(model);
  return { model, dalle, stream: !dalle && n === 1 };
}

function updateMode() {
  const { dalle, stream } = mode();
  for (const field of document.querySelectorAll(".gpt-only")) {
    field.querySelector("input, select").disabled = dalle;
  }
  el.compression.disabled = dalle || el.format.value === "png";
  if (dalle) el.hint.textContent = "DALL·E models: no streaming, background or output format; images come back as b64_json.";
  else if (!stream) el.hint.textContent = "Several images: one request without streaming (streaming returns one image, so no previews).";
  else el.hint.textContent = "Streaming: partial images appear below as the image is drawn.";
}

// ---- requests ----------------------------------------------------------------------------------------------

// The JSON body (or form fields) the form describes; `auto` and empty fields are left to the server's defaults.
function requestFields(prompt) {
  const { model, dalle, stream } = mode();
  const fields = { prompt, model: model || undefined, n: numberField(el.n) };
  const size = el.size.value.trim();
  if (size && size !== "auto") fields.size = size;
  if (el.quality.value !== "auto") fields.quality = el.quality.value;
  if (dalle) {
    fields.response_format = "b64_json";
  } else {
    if (el.background.value !== "auto") fields.background = el.background.value;
    fields.output_format = el.format.value;
    if (!el.compression.disabled) fields.output_compression = numberField(el.compression);
    if (stream) {
      fields.stream = true;
      fields.partial_images = numberField(el.partials) ?? 0;
    }
  }
  for (const k of Object.keys(fields)) if (fields[k] === undefined) delete fields[k];
  return fields;
}

// Runs one request with its previews into `ui` ({preview, previewBox, previewCaption, status}); resolves to the
// images ([{blob, params, revisedPrompt}]).
async function runRequest(path, { json, form, fields, signal, ui, eventPrefix }) {
  const images = [];
  const started = performance.now();
  const expected = fields.partial_images ?? 0;
  ui.previewBox.hidden = true;
  ui.preview.removeAttribute("src");
  ui.status.textContent = fields.stream ? "Waiting for the first preview…" : "Generating…";
  const answer = await post(path, {
    key: el.key.value.trim(),
    json,
    form,
    signal,
    onEvent({ type, data }) {
      const mime = MEDIA_TYPES[data.output_format] ?? "image/png";
      if (type === `${eventPrefix}.partial_image`) {
        ui.preview.dataset.partialIndex = String(data.partial_image_index);
        ui.preview.src = `data:${mime};base64,${data.b64_json}`;
        ui.previewCaption.textContent = `Preview ${data.partial_image_index + 1} of ${expected}`;
        ui.previewBox.hidden = false;
        ui.status.textContent = `Preview ${data.partial_image_index + 1} of ${expected} received…`;
      } else if (type === `${eventPrefix}.completed`) {
        ui.preview.dataset.partialIndex = "final";
        ui.preview.src = `data:${mime};base64,${data.b64_json}`;
        ui.previewCaption.textContent = `Final image, ${data.size}`;
        ui.previewBox.hidden = false;
        images.push({
          blob: base64ToBlob(data.b64_json, mime),
          params: paramsOf(fields, data),
          revisedPrompt: null,
        });
      }
    },
  });
  if (answer) {
    for (const item of answer.data ?? []) {
      const format = answer.output_format ?? "png";
      const blob = await imageBlob(item, format);
      images.push({ blob, params: paramsOf(fields, answer, formatOf(blob.type)), revisedPrompt: item.revised_prompt ?? null });
    }
  }
  if (!images.length) throw new ApiError("The server ended the stream without an image.");
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  ui.status.textContent = `Done in ${seconds} s: ${images.length} image${images.length > 1 ? "s" : ""} added to the gallery.`;
  return images;
}

// The parameters shown with an image: what the server resolved (size, quality…) over what was asked.
function paramsOf(fields, answer, format) {
  return {
    model: fields.model ?? null,
    size: answer.size ?? fields.size ?? null,
    quality: answer.quality ?? fields.quality ?? null,
    background: answer.background ?? fields.background ?? null,
    output_format: answer.output_format ?? format ?? fields.output_format ?? "png",
    output_compression: fields.output_compression ?? null,
  };
}

function busy(button, cancel, controller) {
  button.disabled = true;
  cancel.hidden = false;
  cancel.onclick = () => controller.abort();
  return () => {
    button.disabled = false;
    cancel.hidden = true;
    cancel.onclick = null;
  };
}

function reportFailure(err, ui, box) {
  if (err.name === "AbortError") {
    ui.status.textContent = "Cancelled.";
    return;
  }
  ui.status.textContent = "";
  showError(box, err instanceof ApiError ? err : new ApiError(String(err.message ?? err)));
}

// ---- generate ----------------------------------------------------------------------------------------------

const mainUi = { preview: el.preview, previewBox: el.previewBox, previewCaption: el.previewCaption, status: el.status };

async function generate(event) {
  event.preventDefault();
  clearError(el.error);
  const prompt = el.prompt.value;
  const fields = requestFields(prompt);
  const controller = new AbortController();
  const done = busy(el.generate, el.cancel, controller);
  try {
    const images = await runRequest("/v1/images/generations", {
      json: fields,
      fields,
      signal: controller.signal,
      ui: mainUi,
      eventPrefix: "image_generation",
    });
    for (const image of images) await addImage({ ...image, prompt, kind: "generation" });
    await gallery.refresh();
  } catch (err) {
    reportFailure(err, mainUi, el.error);
  } finally {
    done();
  }
}

// ---- edit --------------------------------------------------------------------------------------------------

const painter = new MaskPainter(el.maskCanvas, el.brush);
const editUi = {
  preview: el.editPreview,
  previewBox: el.editPreviewBox,
  previewCaption: el.editPreviewCaption,
  status: el.editStatus,
};
let editing = null; // {record, url}
let editController = null; // the edit request in flight, aborted when the editor closes

function openEditor(record) {
  closeEditor();
  editing = { record, url: URL.createObjectURL(record.blob) };
  clearError(el.editError);
  el.editStatus.textContent = "";
  el.editPreviewBox.hidden = true;
  el.editPreview.removeAttribute("src");
  el.editPrompt.value = "";
  el.editSource.onload = () => painter.reset(el.editSource.naturalWidth, el.editSource.naturalHeight);
  el.editSource.src = editing.url;
  el.dialog.showModal();
  el.editPrompt.focus();
}

function closeEditor() {
  editController?.abort();
  editController = null;
  if (editing) URL.revokeObjectURL(editing.url);
  editing = null;
  if (el.dialog.open) el.dialog.close();
}

async function edit(event) {
  event.preventDefault();
  if (!editing) return;
  clearError(el.editError);
  const { record } = editing;
  const prompt = el.editPrompt.value;
  const fields = requestFields(prompt);
  delete fields.size; // an edit keeps the input's own size where the model allows it (the server's `auto`)
  const form = new FormData();
  const format = formatOf(record.blob.type);
  form.append("image", record.blob, `image.${EXTENSIONS[format]}`);
  const mask = await painter.maskBlob();
  if (mask) form.append("mask", mask, "mask.png");
  for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  const controller = new AbortController();
  editController = controller;
  const done = busy(el.editSubmit, el.editCancel, controller);
  try {
    const images = await runRequest("/v1/images/edits", {
      form,
      fields,
      signal: controller.signal,
      ui: editUi,
      eventPrefix: "image_edit",
    });
    for (const image of images) {
      await addImage({ ...image, prompt, kind: "edit", masked: Boolean(mask), parentId: record.id });
    }
    await gallery.refresh();
  } catch (err) {
    reportFailure(err, editUi, el.editError);
  } finally {
    if (editController === controller) editController = null;
    done();
  }
}

// ---- wiring ------------------------------------------------------------------------------------------------

const gallery = new GalleryView($("gallery"), $("gallery-empty"), $("card-template"), {
  edit: openEditor,
  async remove(record) {
    await deleteImage(record.id);
    await gallery.refresh();
  },
});

const restoredSettings = restoreSettings();
el.key.value = loadKey();

let keyTimer = null;
el.key.addEventListener("input", () => {
  saveKey(el.key.value.trim());
  clearTimeout(keyTimer);
  keyTimer = setTimeout(loadModels, 300);
});
el.form.addEventListener("submit", generate);
$("key-form").addEventListener("submit", (e) => e.preventDefault());
el.form.addEventListener("change", () => {
  updateMode();
  saveSettings();
});
el.n.addEventListener("input", updateMode);
el.editForm.addEventListener("submit", edit);
el.clearMask.addEventListener("click", () => painter.clear());
el.editClose.addEventListener("click", closeEditor);
el.dialog.addEventListener("close", () => {
  if (editing) closeEditor();
});

updateMode();
loadModels();
gallery.refresh().catch((err) => showError(el.error, new ApiError(`The gallery could not be read: ${err.message}`)));
document.documentElement.dataset.ready = "true";
