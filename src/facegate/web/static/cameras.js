// Cameras page: draw each camera's last snapshot with the face box and name, and keep the
// health figures current by re-reading this page every few seconds (the server formats
// them; only the parts marked data-live are swapped, so focus and forms stay put).
"use strict";

(() => {
  const REFRESH_MS = 3000;
  const BOX_COLOURS = { identified: "#2ea043", unknown: "#f0b429" };

  // --- snapshots -------------------------------------------------------------------------
  async function snapshot(canvas) {
    if (!canvas.dataset.image) return null;
    const note = canvas.closest("figure").querySelector(".shot-note");
    try {
      const blob = await facegate.api("GET", `/v1/events/${encodeURIComponent(canvas.dataset.event)}/snapshot`);
      return await createImageBitmap(blob);
    } catch (error) {
      if (note) note.textContent = ` The photo could not be shown: ${error.message}.`;
      return null;
    }
  }

  // The face box (fractions of the snapshot, data-box) and the name under it.
  function drawBox(context, canvas) {
    const [x1, y1, x2, y2] = canvas.dataset.box.split(",").map(Number);
    const { width, height } = canvas;
    const line = Math.max(2, Math.round(width / 120));
    const colour = BOX_COLOURS[canvas.dataset.kind] || "#ffffff";
    context.lineWidth = line;
    context.strokeStyle = colour;
    context.strokeRect(x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height);
    const size = Math.max(12, Math.round(width / 16));
    context.font = `600 ${size}px system-ui, sans-serif`;
    const label = canvas.dataset.name;
    const textWidth = context.measureText(label).width + size * 0.6;
    const top = Math.min(y2 * height + line, height - size * 1.4);
    context.fillStyle = colour;
    context.fillRect(x1 * width - line / 2, top, textWidth, size * 1.4);
    context.fillStyle = "#111";
    context.fillText(label, x1 * width + size * 0.3 - line / 2, top + size * 1.05);
  }

  async function drawShot(canvas) {
    const image = await snapshot(canvas);
    if (image) {
      canvas.width = image.width;
      canvas.height = image.height;
    }
    const context = canvas.getContext("2d");
    context.fillStyle = "#2b3440"; // no photo (not an admin, or it failed): the box alone
    context.fillRect(0, 0, canvas.width, canvas.height);
    if (image) context.drawImage(image, 0, 0);
    drawBox(context, canvas);
  }

  // --- live figures ----------------------------------------------------------------------
  // The control form offers what the camera is not: Start when stopped, else Stop.
  function showWanted(card, wanted) {
    const form = card.querySelector("form.control");
    if (!form || card.dataset.wanted === wanted) return;
    card.dataset.wanted = wanted;
    const verb = wanted === "stopped" ? "start" : "stop";
    const button = form.querySelector("button");
    form.dataset.api = `POST /v1/cameras/${encodeURIComponent(card.dataset.camera)}/${verb}`;
    button.textContent = `${verb === "start" ? "Start" : "Stop"} ${card.dataset.camera}`;
    button.className = verb === "start" ? "primary" : "danger";
  }

  function swap(current, fresh) {
    for (const part of current.querySelectorAll("[data-live]")) {
      const replacement = fresh.querySelector(`[data-live="${part.dataset.live}"]`);
      if (replacement && replacement.outerHTML !== part.outerHTML) part.replaceWith(replacement);
    }
  }

  // A new snapshot only when there is a newer decision: each photo shown is audited.
  function swapShot(card, fresh) {
    const shown = card.querySelector("figure.shot");
    const latest = fresh.querySelector("figure.shot");
    const eventOf = (figure) => figure?.querySelector("canvas")?.dataset.event || "";
    const same = eventOf(shown) === eventOf(latest) && (eventOf(shown) || shown.textContent === latest.textContent);
    if (same || !shown || !latest) return;
    shown.replaceWith(latest);
    latest.querySelectorAll("canvas.snapshot").forEach(drawShot);
  }

  async function refresh(news) {
    const response = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!response.ok || new URL(response.url).pathname !== window.location.pathname) {
      throw new Error("signed out or refused");
    }
    // Parsed, never run: a DOMParser document executes no script.
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const summary = page.getElementById("camera-summary");
    if (summary) document.getElementById("camera-summary")?.replaceWith(summary);
    for (const card of document.querySelectorAll("article[data-camera]")) {
      const fresh = page.querySelector(`article[data-camera="${CSS.escape(card.dataset.camera)}"]`);
      if (!fresh) continue;
      const before = card.querySelector("[data-live=condition]").dataset.state;
      swap(card, fresh);
      swapShot(card, fresh);
      showWanted(card, fresh.dataset.wanted);
      const after = card.querySelector("[data-live=condition]").dataset.state;
      if (before !== after) news.textContent = `Camera ${card.dataset.camera} is now ${after}.`;
    }
  }

  function keepFresh() {
    const news = document.getElementById("camera-news");
    const timer = setInterval(async () => {
      if (document.hidden) return; // nobody is looking: ask nothing
      try {
        await refresh(news);
      } catch (error) {
        clearInterval(timer);
        const summary = document.getElementById("camera-summary");
        if (summary) facegate.say(summary, "Updates stopped: reload the page (you may have been signed out).", "bad");
      }
    }, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("canvas.snapshot").forEach(drawShot);
    for (const form of document.querySelectorAll("form.control")) {
      form.addEventListener("facegate:done", (event) => {
        showWanted(form.closest("article[data-camera]"), event.detail.wanted);
      });
    }
    if (document.querySelector("article[data-camera]")) keepFresh();
  });
})();
