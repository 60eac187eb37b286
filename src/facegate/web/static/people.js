// People list and person page: a message carried over from the previous page, the
// export (a download made from the API's JSON: the API needs the session cookie, so a
// plain link would not do) and erasure with a confirmation step.
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

function wireErase() {
  const start = document.getElementById("erase-start");
  if (!start) return;
  const panel = document.getElementById("erase-confirm");
  const confirm = document.getElementById("erase-now");
  const cancel = document.getElementById("erase-cancel");
  const out = document.getElementById("erase-result");
  const open = (shown) => {
    panel.hidden = !shown;
    start.setAttribute("aria-expanded", String(shown));
    (shown ? confirm : start).focus();
  };
  start.addEventListener("click", () => open(true));
  cancel.addEventListener("click", () => open(false));
  confirm.addEventListener("click", async () => {
    confirm.disabled = cancel.disabled = true;
    facegate.say(out, "Erasing…");
    try {
      await facegate.api("DELETE", confirm.dataset.path);
      flashNext(`${confirm.dataset.name} was erased, with their templates, consent records and events.`);
      window.location.assign(confirm.dataset.next);
    } catch (error) {
      facegate.say(out, error.message, "bad");
      confirm.disabled = cancel.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showFlash();
  wireExport();
  wireErase();
});
