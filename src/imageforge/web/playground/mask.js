// The mask painter: strokes on a canvas laid over the image, at the image's own pixel size.
// OpenAI's mask rule: the mask is a PNG of the image's size whose fully transparent pixels are the area to
// redraw. So the painted area becomes transparent and everything else opaque black.

// Opaque magenta and white stripes: visible over any image (the canvas is shown half transparent).
function stripes(ctx) {
  const tile = document.createElement("canvas");
  tile.width = tile.height = 16;
  const t = tile.getContext("2d");
  t.fillStyle = "#ffffff";
  t.fillRect(0, 0, 16, 16);
  t.strokeStyle = "#e0118a";
  t.lineWidth = 6;
  for (const offset of [-16, 0, 16]) {
    t.beginPath();
    t.moveTo(offset, 16);
    t.lineTo(offset + 16, 0);
    t.stroke();
  }
  return ctx.createPattern(tile, "repeat");
}

export class MaskPainter {
  constructor(canvas, brushInput) {
    this.canvas = canvas;
    this.brush = brushInput;
    this.ctx = canvas.getContext("2d");
    this.paint = stripes(this.ctx);
    this.painted = false;
    this.last = null;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      canvas.addEventListener(type, () => this.up());
    }
  }

  reset(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.clear();
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    const sx = this.canvas.width / r.width;
    const sy = this.canvas.height / r.height;
    return { x: (e.clientX - r.left) * sx, y: (e.clientY - r.top) * sy, scale: (sx + sy) / 2 };
  }

  down(e) {
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.last = this.point(e);
    this.stroke(this.last, this.last);
  }

  move(e) {
    if (!this.last) return;
    const p = this.point(e);
    this.stroke(this.last, p);
    this.last = p;
  }

  up() {
    this.last = null;
  }

  stroke(from, to) {
    const ctx = this.ctx;
    ctx.strokeStyle = this.paint;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Number(this.brush.value) * 2 * to.scale; // the brush is a radius in screen pixels
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x + 0.01, to.y); // a zero-length line draws nothing; a dab must still paint
    ctx.stroke();
    this.painted = true;
  }

  // The mask PNG (a Blob), or null when nothing is painted (then the whole image is edited).
  async maskBlob() {
    if (!this.painted) return null;
    const out = document.createElement("canvas");
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.globalCompositeOperation = "destination-out"; // painted pixels: alpha 0 = redraw
    ctx.drawImage(this.canvas, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }
}
