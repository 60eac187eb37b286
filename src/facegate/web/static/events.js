// Events page: new events that match the page's filters arrive over Server-Sent Events
// (GET /v1/events/stream, same filters) and go on top of the table. A polite status line
// says what came; "Pause" holds new events back (nothing is lost) until resumed.
"use strict";

(() => {
  // As the page renders them (web/pages/events.py, templates/events.html).
  const KINDS = {
    track_started: "Track started",
    identified: "Identified",
    unknown: "Unknown face",
    track_ended: "Track ended",
    access: "Access",
    quota: "Quota",
  };
  const TRACK_KINDS = new Set(["track_started", "track_ended"]);
  const ANNOUNCE_EVERY_MS = 1500; // a burst of events is announced once, not one by one

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  const utcText = (iso) => new Date(iso).toISOString().replace("T", " ").slice(0, 19);
  const words = (code) => (code || "").replaceAll("_", " ");

  // The outcome cell's parts: [text, class] pairs.
  function outcomeParts(e) {
    switch (e.kind) {
      case "access":
        return e.reason === "allowed" ? [["allowed", "ok"]] : [["denied", "bad"], [" · " + words(e.reason)]];
      case "quota":
        return e.reason === "within_limit" ? [["granted", "ok"]] : [["denied", "bad"], [" · " + words(e.reason)]];
      case "identified":
        return [["match", "ok"], e.similarity === null ? [""] : [` · similarity ${e.similarity.toFixed(2)}`]];
      case "unknown":
        return [["no match", "warn"], [e.reason ? " · " + e.reason : ""]];
      default:
        return [[`track ${e.track_id ?? ""}`, "muted"]];
    }
  }

  function row(e) {
    const tr = element("tr", null, "fresh");
    tr.dataset.id = e.id;
    const time = element("time", utcText(e.at));
    time.dateTime = e.at;
    tr.append(element("td"), element("td", e.camera || ""), element("td"), element("td"), element("td"));
    const [whenCell, , whatCell, whoCell, outcomeCell] = tr.children;
    whenCell.append(time);
    whatCell.textContent = (KINDS[e.kind] || e.kind) + (e.door ? ` · door ${e.door}` : "") + (e.quota ? ` · ${e.quota}` : "");
    if (e.subject_id) {
      const link = element("a", e.subject_name || e.subject_id);
      link.href = `/ui/people/${encodeURIComponent(e.collection || "")}/${encodeURIComponent(e.subject_id)}`;
      whoCell.append(link);
    } else if (!TRACK_KINDS.has(e.kind)) {
      whoCell.append(element("span", "unknown", "muted"));
    }
    for (const [text, className] of outcomeParts(e)) {
      outcomeCell.append(className ? element("span", text, className) : document.createTextNode(text));
    }
    return tr;
  }

  function sentence(e) {
    const who = e.subject_name || (TRACK_KINDS.has(e.kind) ? "" : "unknown person");
    const what = (KINDS[e.kind] || e.kind).toLowerCase();
    const where = e.camera ? ` at ${e.camera}` : "";
    const how = e.kind === "access" || e.kind === "quota" ? `, ${outcomeParts(e)[0][0]}` : "";
    return `${who ? who + ": " : ""}${what}${where}${how}, ${utcText(e.at).slice(11)} UTC`;
  }

  function start(feed) {
    const table = document.querySelector("#events tbody");
    const news = document.getElementById("live-news");
    const state = document.getElementById("live-state");
    const pause = document.getElementById("pause");
    const keep = Number(feed.dataset.keep) || 200;
    const allowed = feed.dataset.allowed; // "true"/"false": access events that went so only
    const seen = new Set([...table.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
    let paused = false;
    let waiting = []; // arrived while paused, oldest first
    let unannounced = [];
    let announceTimer = null;

    function show(text, kind) {
      state.textContent = text;
      state.className = "pill " + (kind || "");
    }

    function announce(events) {
      unannounced.push(...events);
      if (announceTimer) return;
      announceTimer = setTimeout(() => {
        const count = unannounced.length;
        const newest = unannounced[count - 1];
        news.textContent = paused
          ? `Paused: ${waiting.length} new event${waiting.length === 1 ? "" : "s"} waiting.`
          : count === 1 ? `New event. ${sentence(newest)}.`
          : `${count} new events. The newest: ${sentence(newest)}.`;
        unannounced = [];
        announceTimer = null;
      }, ANNOUNCE_EVERY_MS);
    }

    function insert(events) {
      table.querySelector("tr.empty")?.remove();
      for (const e of events) table.prepend(row(e)); // oldest first: the newest ends on top
      const rows = table.querySelectorAll("tr[data-id]");
      for (let i = keep; i < rows.length; i += 1) rows[i].remove();
    }

    function wanted(e) {
      if (seen.has(e.id)) return false; // listed when the page was made
      if (e.kind === "access" && allowed) return (e.reason === "allowed") === (allowed === "true");
      return true;
    }

    function receive(e) {
      if (!wanted(e)) return;
      seen.add(e.id);
      if (paused) waiting.push(e);
      else insert([e]);
      announce([e]);
    }

    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume live updates" : "Pause live updates";
      if (paused) {
        show("Paused", "warn");
        news.textContent = "Paused: new events wait until you resume.";
        return;
      }
      const held = waiting;
      waiting = [];
      insert(held);
      show(source.readyState === EventSource.OPEN ? "Live" : "Reconnecting…", source.readyState === EventSource.OPEN ? "ok" : "warn");
      news.textContent = `Resumed: ${held.length} event${held.length === 1 ? "" : "s"} added.`;
    });

    // The browser reconnects by itself (sending Last-Event-ID, so nothing is missed).
    const source = new EventSource(feed.dataset.stream);
    source.addEventListener("open", () => { if (!paused) show("Live", "ok"); });
    source.addEventListener("message", (message) => receive(JSON.parse(message.data)));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        show("Disconnected", "bad");
        news.textContent = "Live updates stopped (signed out, or the server refused). Reload the page to resume.";
      } else if (!paused) {
        show("Reconnecting…", "warn");
      }
    });
    feed.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const feed = document.getElementById("feed");
    if (feed) start(feed);
  });
})();
