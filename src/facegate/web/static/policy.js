// Access & quotas: each editor checks its JSON document with the API's dry run
// (PUT ...?dry_run=true: nothing saved) or saves it (PUT), and lists every problem the
// API names. The tables are the server's: after a save the page reloads to show them.
"use strict";

(() => {
  // PUT a document and keep the whole answer: facegate.api folds a problem's `errors`
  // into one sentence, and here each one gets its own line.
  async function put(path, json) {
    const response = await fetch(path, {
      method: "PUT",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": facegate.csrf(),
      },
      body: JSON.stringify(json),
    });
    if (response.status === 401) {
      window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));
      throw new Error("signed out");
    }
    let body = {};
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    return { ok: response.ok, status: response.status, body };
  }

  // A problem's errors as lines: strings from the policy checks, {loc, msg} from pydantic.
  function problemLines(body) {
    const errors = Array.isArray(body.errors) ? body.errors : [];
    const lines = errors.map((e) => (typeof e === "string" ? e
      : [Array.isArray(e.loc) ? e.loc.join(".") : "", e.msg || JSON.stringify(e)].filter(Boolean).join(": ")));
    return lines.length ? lines : [body.detail || body.title || "refused"];
  }

  function show(out, kind, heading, lines) {
    out.replaceChildren();
    out.className = "result " + kind;
    const title = document.createElement("p");
    title.textContent = heading;
    out.append(title);
    if (lines && lines.length) {
      const list = document.createElement("ul");
      for (const line of lines) {
        const item = document.createElement("li");
        item.textContent = line;
        list.append(item);
      }
      out.append(list);
    }
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  // What a valid document holds, in words.
  function summary(kind, answer) {
    if (kind === "quotas") return plural(answer.quotas.length, "quota");
    const p = answer.policy;
    return [plural(p.doors.length, "door"), plural(p.groups.length, "group"),
      plural(p.schedules.length, "schedule"), plural(p.rules.length, "rule")].join(", ");
  }

  async function submit(form, save) {
    const out = form.querySelector(".result");
    const kind = form.dataset.kind;
    let parsed;
    try {
      parsed = JSON.parse(form.querySelector("textarea").value);
    } catch (error) {
      show(out, "bad", "This is not JSON, so nothing was checked or saved:", [error.message]);
      return;
    }
    const path = form.dataset.document + (save ? "" : "?dry_run=true");
    facegate.say(out, save ? "Saving…" : "Checking…");
    const answer = await put(path, parsed);
    if (!answer.ok) {
      const lines = problemLines(answer.body);
      const what = answer.status === 422 ? plural(lines.length, "problem") : (answer.body.title || answer.status);
      show(out, "bad", save ? `Not saved (${what}); the stored document is unchanged:`
        : `Not valid (${what}); nothing was saved:`, lines);
      return;
    }
    if (save) {
      window.location.assign(`/ui/policy?saved=${encodeURIComponent(kind)}#${kind}`);
      return;
    }
    show(out, "ok", `Valid: ${summary(kind, answer.body)}. Nothing was saved; version ` +
      `${answer.body.version} stays in force until you press Save.`);
  }

  function wire(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await submit(form, event.submitter?.value === "save");
      } catch (error) {
        show(form.querySelector(".result"), "bad", error.message);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
    form.addEventListener("reset", () => facegate.say(form.querySelector(".result"), ""));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.editor[data-document]").forEach(wire);
  });
})();
