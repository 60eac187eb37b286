// Identify: send the chosen photo to POST /v1/collections/{c}/identify, then draw it on a
// canvas with each face's box and name (or "unknown"), and list the faces with the
// similarity and the operating point that decided.
"use strict";

(() => {
  const MATCH_COLOUR = "#146c2e"; // app.css --ok
  const UNKNOWN_COLOUR = "#a4161a"; // app.css --bad

  const form = document.getElementById("identify");
  if (!form) return;
  const out = document.getElementById("identify-result");
  const answerBox = document.getElementById("identify-answer");
  const canvas = document.getElementById("identify-canvas");
  const rows = document.getElementById("identify-faces");

  const who = (face) => (face.subject ? face.subject.name : "unknown");

  function drawFaces(bitmap, faces) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0);
    // Lines and labels sized to the photo, so they read the same once it is scaled down.
    const unit = Math.max(bitmap.width, bitmap.height) / 100;
    context.lineWidth = Math.max(2, unit * 0.6);
    context.font = `600 ${Math.max(12, Math.round(unit * 3.2))}px system-ui, sans-serif`;
    context.textBaseline = "top";
    faces.forEach((face, index) => {
      const [x1, y1, x2, y2] = face.face.bbox;
      const colour = face.subject ? MATCH_COLOUR : UNKNOWN_COLOUR;
      context.strokeStyle = colour;
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const label = `${index + 1}. ${who(face)}`;
      const pad = unit * 0.6;
      const height = Math.max(12, Math.round(unit * 3.2)) + 2 * pad;
      const width = context.measureText(label).width + 2 * pad;
      const top = y1 - height >= 0 ? y1 - height : y2; // above the box, or below it at the top edge
      context.fillStyle = colour;
      context.fillRect(x1, top, width, height);
      context.fillStyle = "#fff";
      context.fillText(label, x1 + pad, top + pad);
    });
    canvas.setAttribute("aria-label", `The photo with ${faces.length} face${faces.length === 1 ? "" : "s"} marked: ${faces.map(who).join(", ")}`);
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    row.append(td);
  }

  function whoCell(face, collection) {
    if (!face.subject) {
      const box = document.createElement("span");
      const verdict = document.createElement("strong");
      verdict.className = "bad";
      verdict.textContent = "unknown";
      const reason = document.createElement("small");
      reason.className = "muted reason";
      reason.textContent = face.reason;
      box.append(verdict, reason);
      return box;
    }
    const link = document.createElement("a");
    link.href = `/ui/people/${encodeURIComponent(collection)}/${encodeURIComponent(face.subject.id)}`;
    link.textContent = face.subject.name;
    link.className = "ok";
    return link;
  }

  function operatingPoint(point) {
    const box = document.createElement("span");
    const detail = document.createElement("small");
    detail.className = "muted reason";
    detail.textContent = `threshold ${point.threshold.toFixed(3)} · ${point.model_id}`;
    box.append(`FMR ${point.fmr}`, detail);
    return box;
  }

  function listFaces(answer) {
    rows.replaceChildren();
    answer.faces.forEach((face, index) => {
      const row = document.createElement("tr");
      const number = document.createElement("th");
      number.scope = "row";
      number.textContent = String(index + 1);
      row.append(number);
      cell(row, whoCell(face, answer.collection));
      cell(row, face.similarity.toFixed(3));
      cell(row, operatingPoint(face.operating_point));
      rows.append(row);
    });
  }

  function summary(faces) {
    const known = faces.filter((f) => f.subject).map((f) => f.subject.name);
    const unknown = faces.length - known.length;
    const parts = [];
    if (known.length) parts.push(`recognised: ${known.join(", ")}`);
    if (unknown) parts.push(`${unknown} unknown`);
    return `${faces.length} face${faces.length === 1 ? "" : "s"}; ${parts.join("; ")}.`;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.image.files[0];
    if (!file) return facegate.say(out, "Choose a photo first.", "bad");
    const collection = form.elements.collection.value;
    const button = form.querySelector("button[type=submit]");
    const body = new FormData();
    body.append("image", file, file.name);
    button.disabled = true;
    answerBox.hidden = true;
    facegate.say(out, "Identifying…");
    try {
      const answer = await facegate.api("POST", `/v1/collections/${encodeURIComponent(collection)}/identify`, body);
      drawFaces(await createImageBitmap(file), answer.faces);
      listFaces(answer);
      answerBox.hidden = false;
      facegate.say(out, summary(answer.faces), answer.faces.some((f) => f.subject) ? "ok" : "warn");
    } catch (error) {
      facegate.say(out, error.message, "bad");
    } finally {
      button.disabled = false;
    }
  });
})();
