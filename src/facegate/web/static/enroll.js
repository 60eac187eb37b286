// Enrollment: who, their consent, then photos. Every photo (uploaded or taken with the
// webcam) is checked with POST /v1/detect before it is accepted, so the person hears at
// once why a photo is unusable; only usable photos are sent. On submit: create the
// subject (with the consent), add each photo, then open the person's page.
"use strict";

(() => {
  const CHECK_EVERY_MS = 700; // webcam: one detection per interval, never two at once
  const FLASH = "facegate.flash"; // shown by people.js on the next page

  const form = document.getElementById("enroll");
  if (!form) return;
  const minQuality = Number(form.dataset.minQuality);
  const collection = document.getElementById("enroll-collection");
  const consent = document.getElementById("consent");
  const list = document.getElementById("photos");
  const summary = document.getElementById("photos-summary");
  const out = document.getElementById("enroll-result");
  const progress = document.getElementById("enroll-progress");
  const photos = []; // { blob, name, state: "checking" | "usable" | "unusable", row }

  // --- what a detection means for enrollment -----------------------------------------------
  const area = (face) => (face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1]);

  // The verdict on one detection answer: usable or not, and why, in plain words.
  function assess(answer) {
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

  async function detect(blob, name) {
    const body = new FormData();
    body.append("image", blob, name);
    return assess(await facegate.api("POST", "/v1/detect", body));
  }

  // --- the chosen photos -------------------------------------------------------------------
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
  async function addPhoto(blob, name, known) {
    const photo = { blob, name, state: "checking" };
    photo.row = photoRow(photo);
    photos.push(photo);
    list.append(photo.row);
    updateSummary();
    if (known) return settle(photo, known);
    facegate.say(photo.row.querySelector(".result"), "Checking…");
    try {
      settle(photo, await detect(blob, name));
    } catch (error) {
      settle(photo, { usable: false, kind: "bad", text: error.message });
    }
  }

  document.getElementById("enroll-files").addEventListener("change", (event) => {
    for (const file of event.target.files) addPhoto(file, file.name);
    event.target.value = ""; // the same file may be chosen again after a removal
  });

  // --- the webcam --------------------------------------------------------------------------
  const camera = {
    panel: document.getElementById("camera"),
    video: document.getElementById("camera-video"),
    feedback: document.getElementById("camera-feedback"),
    take: document.getElementById("camera-take"),
    start: document.getElementById("camera-start"),
    status: document.getElementById("camera-status"),
    stream: null,
    timer: null,
    busy: false,
    good: null, // the last checked frame, when it was usable: what "Take photo" adds
    taken: 0,
  };

  function frameBlob() {
    const canvas = document.createElement("canvas");
    canvas.width = camera.video.videoWidth;
    canvas.height = camera.video.videoHeight;
    canvas.getContext("2d").drawImage(camera.video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  }

  async function checkFrame() {
    if (camera.busy || camera.video.readyState < 2 || !camera.video.videoWidth) return;
    camera.busy = true;
    try {
      const blob = await frameBlob();
      const verdict = await detect(blob, "webcam.jpg");
      if (!camera.stream) return; // stopped while the check ran
      camera.good = verdict.usable ? { blob, verdict } : null;
      camera.take.disabled = !verdict.usable;
      facegate.say(camera.feedback, verdict.text, verdict.kind);
    } catch (error) {
      camera.good = null;
      camera.take.disabled = true;
      facegate.say(camera.feedback, error.message, "bad");
    } finally {
      camera.busy = false;
    }
  }

  function stopCamera() {
    clearInterval(camera.timer);
    if (camera.stream) camera.stream.getTracks().forEach((track) => track.stop());
    camera.stream = null;
    camera.good = null;
    camera.video.srcObject = null;
    camera.panel.hidden = true;
    camera.start.hidden = false;
    camera.take.disabled = true;
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      facegate.say(camera.status, "This browser allows the webcam only on an https:// address or on localhost.", "bad");
      return;
    }
    try {
      camera.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      facegate.say(camera.status, `The webcam could not be opened: ${error.message}`, "bad");
      return;
    }
    facegate.say(camera.status, "");
    camera.video.srcObject = camera.stream;
    camera.panel.hidden = false;
    camera.start.hidden = true;
    facegate.say(camera.feedback, "Looking for a face…");
    camera.timer = setInterval(checkFrame, CHECK_EVERY_MS);
    camera.take.focus();
  }

  camera.start.addEventListener("click", startCamera);
  document.getElementById("camera-stop").addEventListener("click", () => {
    stopCamera();
    camera.start.focus();
  });
  camera.take.addEventListener("click", () => {
    if (!camera.good) return;
    camera.taken += 1;
    addPhoto(camera.good.blob, `webcam-${camera.taken}.jpg`, camera.good.verdict);
    camera.good = null; // the next photo is a new frame, checked again
    camera.take.disabled = true;
  });
  window.addEventListener("pagehide", stopCamera);

  // --- consent: none is kept in an ephemeral collection --------------------------------------
  function followCollection() {
    const ephemeral = collection.selectedOptions[0].hasAttribute("data-ephemeral");
    consent.disabled = ephemeral;
    document.getElementById("ephemeral-note").hidden = !ephemeral;
  }
  collection.addEventListener("change", followCollection);
  followCollection();

  // --- submit --------------------------------------------------------------------------------
  function consentJson() {
    const fields = form.elements;
    const body = { legal_basis: fields.legal_basis.value, notice_version: fields.notice_version.value.trim() };
    if (fields.expires_at.value) body.expires_at = new Date(`${fields.expires_at.value}T00:00`).toISOString();
    return body;
  }

  function subjectJson() {
    const fields = form.elements;
    const body = { name: fields.name.value.trim() };
    if (fields.external_id.value.trim()) body.external_id = fields.external_id.value.trim();
    if (!consent.disabled) body.consent = consentJson();
    return body;
  }

  // What stops the submit, in words (the browser also marks the fields), or null.
  function problem() {
    if (!form.checkValidity()) {
      form.reportValidity();
      const agree = document.getElementById("consent-agree");
      if (!consent.disabled && !agree.checked) return "The person's consent is required: fill in the consent step and tick the agreement.";
      return "Fill in the marked fields first.";
    }
    if (photos.some((p) => p.state === "checking")) return "Wait a moment: photos are still being checked.";
    if (!photos.some((p) => p.state === "usable")) return "Add at least one usable photo.";
    return null;
  }

  async function addFaces(path, usable) {
    const failed = [];
    for (const [index, photo] of usable.entries()) {
      facegate.say(out, `Adding photo ${index + 1} of ${usable.length}…`);
      const body = new FormData();
      body.append("images", photo.blob, photo.name);
      body.append("face", "largest");
      try {
        await facegate.api("POST", `${path}/faces`, body);
      } catch (error) {
        failed.push(`${photo.name}: ${error.message}`);
      }
      progress.value += 1;
    }
    return failed;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const stop = problem();
    if (stop) return facegate.say(out, stop, "bad");
    const submit = document.getElementById("enroll-submit");
    const usable = photos.filter((p) => p.state === "usable");
    const subject = subjectJson();
    const base = `/v1/collections/${encodeURIComponent(collection.value)}/subjects`;
    submit.disabled = true;
    stopCamera();
    progress.max = usable.length + 1;
    progress.value = 0;
    progress.hidden = false;
    try {
      facegate.say(out, "Creating the person…");
      const created = await facegate.api("POST", base, subject);
      progress.value = 1;
      const path = `${base}/${encodeURIComponent(created.id)}`;
      const failed = await addFaces(path, usable);
      if (failed.length === usable.length) {
        // A person nobody can recognise is only a liability: take them out again.
        await facegate.api("DELETE", path);
        throw new Error(`No photo could be enrolled, so nothing was kept. ${failed.join(" ")}`);
      }
      const added = usable.length - failed.length;
      let message = `${created.name} was enrolled with ${added} photo${added === 1 ? "" : "s"}.`;
      if (failed.length) message += ` Not enrolled: ${failed.join(" ")}`;
      sessionStorage.setItem(FLASH, message);
      facegate.say(out, message, "ok");
      window.location.assign(`/ui/people/${encodeURIComponent(collection.value)}/${encodeURIComponent(created.id)}`);
    } catch (error) {
      facegate.say(out, error.message, "bad");
      progress.hidden = true;
      submit.disabled = false;
    }
  });
})();
