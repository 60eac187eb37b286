// facegate UI: every change goes to the REST API with the session cookie and the page's
// CSRF token. Forms opt in with data-api="METHOD /v1/path"; see docs/web.md.
"use strict";

const facegate = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // A problem (RFC 9457) or any failed answer as one readable sentence.
  async function failure(response) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      detail = body.detail || body.title || detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg || String(d)).join("; ");
      if (Array.isArray(body.errors) && body.errors.length) detail += ": " + body.errors.join("; ");
    } catch (_) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    return error;
  }

  // Call the API. body: a FormData (multipart), a plain object (JSON) or undefined.
  async function api(method, path, body) {
    const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));
      throw new Error("signed out");
    }
    if (!response.ok) throw await failure(response);
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.blob();
  }

  function say(element, text, kind) {
    if (!element) return;
    element.textContent = text;
    element.classList.remove("ok", "bad", "warn");
    if (kind) element.classList.add(kind);
  }

  // A form's named fields as JSON: empty fields left out, data-type="number|bool|list".
  function formJson(form) {
    const out = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.type === "file" || field.type === "submit") continue;
      if ((field.type === "checkbox" || field.type === "radio") && !field.checked) {
        if (field.dataset.type === "bool" && field.type === "checkbox") out[field.name] = false;
        continue;
      }
      let value = field.value;
      if (value === "" && field.dataset.type !== "bool") continue;
      if (field.dataset.type === "number") value = Number(value);
      if (field.dataset.type === "bool") value = field.type === "checkbox" ? true : value === "true";
      if (field.dataset.type === "list") value = value.split(",").map((s) => s.trim()).filter(Boolean);
      out[field.name] = value;
    }
    return out;
  }

  // <form data-api="POST /v1/..." [data-multipart] [data-confirm="..."] [data-then="reload|/ui/...|show"]>
  function wire(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const [method, path] = form.dataset.api.split(" ");
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      const out = form.querySelector(".result");
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      say(out, "Working…");
      try {
        const body = form.dataset.multipart !== undefined ? new FormData(form)
          : method === "DELETE" ? undefined : formJson(form);
        const answer = await api(method, path, body);
        form.dispatchEvent(new CustomEvent("facegate:done", { detail: answer }));
        const then = form.dataset.then || "reload";
        if (then === "reload") window.location.reload();
        else if (then.startsWith("/")) window.location.assign(then);
        else say(out, form.dataset.done || "Done.", "ok");
      } catch (error) {
        say(out, error.message, "bad");
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-api]").forEach(wire);
  });

  return { api, say, formJson, csrf };
})();
