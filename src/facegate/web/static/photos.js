// Photos of a person, checked one by one before they are sent: shared by enrollment
// (enroll.js) and the person page (people.js). Every photo is checked with
// POST /v1/detect as it is chosen, so the person hears at once why a photo is unusable;
// only usable photos are sent, one request each (POST .../faces, multipart "images").
"use strict";

const facegatePhotos = (() => {
  const area = (face) => (face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1]);

  // The verdict on one detection answer: usable or not, and why, in plain words.
  function assess(answer, minQuality) {
    const faces = answer.faces;
    if (!faces.length) return { usable: false, kind: "bad", text: "No face found." };
    const face = faces.reduce((a, b) => (area(b) > area(a) ? b : a));
    const notes = faces.length > 1 ? [`Several faces (${faces.length}): the largest is used.`] : [];
    const quality = face.quality ? face.quality.score : 0;
    const reasons = face.quality && face.quality.reasons.length ? face.quality.reasons.join("; ") : "";
    if (quality < minQuality) {
      const why = reasons || "below the minimum quality";
      notes.push(`Face found, but unusable (quality ${quality.toFixed(2)}, needs ${minQuality.toFixed(2)}): ${why}.`);
      return { usable: false, kind: "bad", text: notes.join(" ") };
    }
    notes.push(`Face found, quality ${quality.toFixed(2)}${reasons ? ` (${reasons})` : ""}.`);
    return { usable: true, kind: faces.length > 1 || reasons ? "warn" : "ok", text: notes.join(" ") };
  }

  async function detect(blob, name, minQuality) {
    const body = new FormData();
    body.append("image", blob, name);
    return assess(await facegate.api("POST", "/v1/detect", body), minQuality);
  }

  // The chosen photos, shown in `list` (a <ul>) with a count in `summary`.
  // Each photo: { blob, name, state: "checking" | "usable" | "unusable", row }.
  function chooser({ list, summary, minQuality }) {
    const photos = [];

    function updateSummary() {
      const usable = photos.filter((p) => p.state === "usable").length;
      const left = photos.filter((p) => p.state === "unusable").length;
      const checking = photos.length - usable - left;
      if (!photos.length) summary.textContent = "None yet.";
      else {
        const parts = [`${usable} usable`];
        if (left) parts.push(`${left} left out`);
        if (checking) parts.push(`${checking} being checked`);
        summary.textContent = parts.join(", ") + ".";
      }
    }

    function photoRow(photo) {
      const row = document.createElement("li");
      const image = document.createElement("img");
      image.src = URL.createObjectURL(photo.blob);
      image.alt = `Photo ${photo.name}`;
      const name = document.createElement("p");
      name.className = "name";
      name.textContent = photo.name;
      const feedback = document.createElement("p");
      feedback.className = "result";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${photo.name}`);
      remove.addEventListener("click", () => {
        photos.splice(photos.indexOf(photo), 1);
        URL.revokeObjectURL(image.src);
        row.remove();
        updateSummary();
      });
      row.append(image, name, feedback, remove);
      return row;
    }

    function settle(photo, verdict) {
      photo.state = verdict.usable ? "usable" : "unusable";
      photo.row.className = photo.state;
      const text = verdict.usable ? verdict.text : `Left out: ${verdict.text}`;
      facegate.say(photo.row.querySelector(".result"), text, verdict.kind);
      updateSummary();
    }

    // A photo joins the list at once; its verdict follows (or is known, from the webcam).
    async function add(blob, name, known) {
      const photo = { blob, name, state: "checking" };
      photo.row = photoRow(photo);
      photos.push(photo);
      list.append(photo.row);
      updateSummary();
      if (known) return settle(photo, known);
      facegate.say(photo.row.querySelector(".result"), "Checking…");
      try {
        settle(photo, await detect(blob, name, minQuality));
      } catch (error) {
        settle(photo, { usable: false, kind: "bad", text: error.message });
      }
    }

    // Every file chosen in a file input joins the list.
    function watch(input) {
      input.addEventListener("change", (event) => {
        for (const file of event.target.files) add(file, file.name);
        event.target.value = ""; // the same file may be chosen again after a removal
      });
    }

    return {
      photos,
      add,
      watch,
      usable: () => photos.filter((p) => p.state === "usable"),
      checking: () => photos.some((p) => p.state === "checking"),
    };
  }

  // POST each photo to `${path}/faces` on its own; `step(index)` before each.
  // Answers the failures, as "name: why" sentences.
  async function send(path, usable, step) {
    const failed = [];
    for (const [index, photo] of usable.entries()) {
      if (step) step(index);
      const body = new FormData();
      body.append("images", photo.blob, photo.name);
      body.append("face", "largest");
      try {
        await facegate.api("POST", `${path}/faces`, body);
      } catch (error) {
        failed.push(`${photo.name}: ${error.message}`);
      }
    }
    return failed;
  }

  return { assess, detect, chooser, send };
})();
