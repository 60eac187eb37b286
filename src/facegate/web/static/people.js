// People list and person page: a message carried over from the previous page, the
// export (a download made from the API's JSON: the API needs the session cookie, so a
// plain link would not do), erasure and consent withdrawal with a confirmation step,
// editing, a new consent record and more photos (checked by photos.js).
"use strict";

const FLASH = "facegate.flash";

// A message for the next page (sessionStorage, not the URL: nothing to spoof by a link).
function flashNext(text) {
  sessionStorage.setItem(FLASH, text);
}

function showFlash() {
  const text = sessionStorage.getItem(FLASH);
  const box = document.getElementById("flash");
  if (!text || !box) return;
  sessionStorage.removeItem(FLASH);
  facegate.say(box, text, "ok");
  box.hidden = false;
}

function wireExport() {
  const button = document.getElementById("export");
  if (!button) return;
  const link = document.getElementById("export-link");
  const out = document.getElementById("export-result");
  button.addEventListener("click", async () => {
    button.disabled = true;
    facegate.say(out, "Exporting…");
    try {
      const data = await facegate.api("GET", button.dataset.path);
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      if (link.href) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(blob);
      link.download = button.dataset.file;
      link.hidden = false;
      link.click();
      facegate.say(out, "Exported. The export is recorded in the audit trail.", "ok");
    } catch (error) {
      facegate.say(out, error.message, "bad");
    } finally {
      button.disabled = false;
    }
  });
}

// A dangerous button behind a confirmation step: `${prefix}-start` opens it,
// `${prefix}-now` (data-method, data-path, data-name, data-next) does it, then goes on.
function wireConfirm(prefix, working, done) {
  const start = document.getElementById(`${prefix}-start`);
  if (!start) return;
  const panel = document.getElementById(`${prefix}-confirm`);
  const confirm = document.getElementById(`${prefix}-now`);
  const cancel = document.getElementById(`${prefix}-cancel`);
  const out = document.getElementById(`${prefix}-result`);
  const open = (shown) => {
    panel.hidden = !shown;
    start.setAttribute("aria-expanded", String(shown));
    (shown ? confirm : start).focus();
  };
  start.addEventListener("click", () => open(true));
  cancel.addEventListener("click", () => open(false));
  confirm.addEventListener("click", async () => {
    confirm.disabled = cancel.disabled = true;
    facegate.say(out, working);
    try {
      await facegate.api(confirm.dataset.method || "DELETE", confirm.dataset.path);
      flashNext(done(confirm.dataset.name));
      window.location.assign(confirm.dataset.next);
    } catch (error) {
      facegate.say(out, error.message, "bad");
      confirm.disabled = cancel.disabled = false;
    }
  });
}

// The edit form is an ordinary data-api form (app.js); the next page says it was saved.
function wireEdit() {
  const form = document.getElementById("edit");
  if (!form) return;
  form.addEventListener("facegate:done", (event) => flashNext(`Saved: ${event.detail.name}.`));
}

// A new consent record: the browser checks the required fields (the agreement too).
function wireConsent() {
  const form = document.getElementById("consent-form");
  if (!form) return;
  const out = document.getElementById("consent-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = form.elements;
    const body = { legal_basis: fields.legal_basis.value, notice_version: fields.notice_version.value.trim() };
    if (fields.expires_at.value) body.expires_at = new Date(`${fields.expires_at.value}T00:00`).toISOString();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    facegate.say(out, "Recording…");
    try {
      await facegate.api("POST", form.dataset.path, body);
      flashNext(`The consent was recorded (notice ${body.notice_version}).`);
      window.location.reload();
    } catch (error) {
      facegate.say(out, error.message, "bad");
      button.disabled = false;
    }
  });
}

// More photos of the person: each checked as it is chosen (photos.js), then sent.
function wireAddPhotos() {
  const section = document.getElementById("add-faces");
  if (!section) return;
  const chosen = facegatePhotos.chooser({
    list: document.getElementById("photos"),
    summary: document.getElementById("photos-summary"),
    minQuality: Number(section.dataset.minQuality),
  });
  chosen.watch(document.getElementById("photos-files"));
  const submit = document.getElementById("photos-submit");
  const out = document.getElementById("photos-result");
  submit.addEventListener("click", async () => {
    if (chosen.checking()) return facegate.say(out, "Wait a moment: photos are still being checked.", "bad");
    const usable = chosen.usable();
    if (!usable.length) return facegate.say(out, "Add at least one usable photo.", "bad");
    submit.disabled = true;
    const failed = await facegatePhotos.send(section.dataset.path, usable, (index) => {
      facegate.say(out, `Adding photo ${index + 1} of ${usable.length}…`);
    });
    const added = usable.length - failed.length;
    if (!added) {
      facegate.say(out, `No photo could be added. ${failed.join(" ")}`, "bad");
      submit.disabled = false;
      return;
    }
    let message = `${added} photo${added === 1 ? " was" : "s were"} added.`;
    if (failed.length) message += ` Not added: ${failed.join(" ")}`;
    flashNext(message);
    window.location.reload();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showFlash();
  wireExport();
  wireConfirm("erase", "Erasing…", (name) => `${name} was erased, with their templates, consent records and events.`);
  wireConfirm("withdraw", "Withdrawing…", (name) => `${name}'s consent was withdrawn: they were erased, with their templates, consent records and events.`);
  wireEdit();
  wireConsent();
  wireAddPhotos();
});
