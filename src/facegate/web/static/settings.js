// Settings: a collection's changed fields go to PATCH /v1/collections/{name}; a new key
// is made with POST /v1/keys and its secret shown once. Revoking uses app.js's
// declarative forms (data-api="DELETE ...").
"use strict";

(() => {
  // A retention input as the API wants it: empty means no limit (null).
  const days = (input) => (input.value.trim() === "" ? null : Number(input.value));
  const initialDays = (input) => (input.dataset.initial === "" ? null : Number(input.dataset.initial));

  // Only what differs from the page as loaded, so the audit trail records real changes.
  function changes(form) {
    const out = {};
    const fmr = form.elements.fmr;
    if (Number(fmr.value) !== Number(fmr.dataset.initial)) out.fmr = Number(fmr.value);
    for (const name of ["max_idle_days", "max_template_age_days"]) {
      const input = form.elements[name];
      if (days(input) !== initialDays(input)) out[name] = days(input);
    }
    const images = form.elements.store_images;
    if (!images.disabled && images.checked !== (images.dataset.initial === "true")) {
      out.store_images = images.checked;
    }
    return out;
  }

  // The page now shows what the API stored.
  function remember(form, saved) {
    form.elements.fmr.dataset.initial = String(saved.fmr);
    form.elements.store_images.dataset.initial = String(saved.store_images);
    for (const name of ["max_idle_days", "max_template_age_days"]) {
      const value = saved[name] === null ? "" : String(saved[name]);
      form.elements[name].value = value;
      form.elements[name].dataset.initial = value;
    }
  }

  function savedText(saved) {
    const limit = (value) => (value === null ? "none" : `${value} days`);
    const threshold = saved.threshold === null ? "not calibrated" : saved.threshold.toFixed(3);
    return `Saved: FMR ${saved.fmr} (threshold ${threshold}), ` +
      `face crops ${saved.store_images ? "kept" : "not kept"}, idle limit: ${limit(saved.max_idle_days)}, ` +
      `template age limit: ${limit(saved.max_template_age_days)}.`;
  }

  function wireCollection(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = form.querySelector(".result");
      const body = changes(form);
      if (Object.keys(body).length === 0) {
        facegate.say(out, "Nothing changed.", "");
        return;
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      facegate.say(out, "Saving…");
      try {
        const path = "/v1/collections/" + encodeURIComponent(form.dataset.collection);
        const saved = await facegate.api("PATCH", path, body);
        remember(form, saved);
        facegate.say(out, savedText(saved), "ok");
      } catch (error) {
        facegate.say(out, error.message, "bad");
      } finally {
        button.disabled = false;
      }
    });
  }

  function newKeyBody(form) {
    const scopes = [...form.querySelectorAll("input[name=scopes]:checked")].map((box) => box.value);
    const collections = form.querySelector("#key-collections").value
      .split(",").map((s) => s.trim()).filter(Boolean);
    const name = form.querySelector("#key-name").value.trim();
    return { name, scopes, collections: collections.length ? collections : null };
  }

  function showSecret(created) {
    const panel = document.getElementById("new-secret");
    document.getElementById("new-secret-value").textContent = created.secret;
    panel.hidden = false;
    document.getElementById("copy-secret").focus();
  }

  async function copySecret() {
    const value = document.getElementById("new-secret-value");
    const out = document.getElementById("copy-result");
    try {
      await navigator.clipboard.writeText(value.textContent);
      facegate.say(out, "Copied.", "ok");
    } catch (_) {
      // No clipboard access (an insecure origin, or refused): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(value);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      facegate.say(out, "Selected: press Ctrl+C (or ⌘C) to copy.", "warn");
    }
  }

  function wireNewKey(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = form.querySelector(".result");
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      facegate.say(out, "Creating…");
      try {
        const created = await facegate.api("POST", "/v1/keys", newKeyBody(form));
        form.reset();
        facegate.say(out, `Created key '${created.name}' (${created.id}).`, "ok");
        showSecret(created);
      } catch (error) {
        facegate.say(out, error.message, "bad");
      } finally {
        button.disabled = false;
      }
    });
    document.getElementById("copy-secret").addEventListener("click", copySecret);
    // Reloading forgets the secret (it is nowhere else) and lists the new key.
    document.getElementById("secret-done").addEventListener("click", () => window.location.reload());
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.collection[data-collection]").forEach(wireCollection);
    const newKey = document.getElementById("new-key");
    if (newKey) wireNewKey(newKey);
  });
})();
