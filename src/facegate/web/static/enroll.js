// Enrollment: who, their consent, then photos. Every photo (uploaded or taken with the
// webcam) is checked with POST /v1/detect before it is accepted (photos.js), so the person
// hears at once why a photo is unusable; only usable photos are sent. On submit: create the
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
  const chosen = facegatePhotos.chooser({ list, summary, minQuality });
  const detect = (blob, name) => facegatePhotos.detect(blob, name, minQuality);
  const addPhoto = chosen.add;
  chosen.watch(document.getElementById("enroll-files"));

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
    if (chosen.checking()) return "Wait a moment: photos are still being checked.";
    if (!chosen.usable().length) return "Add at least one usable photo.";
    return null;
  }

  async function addFaces(path, usable) {
    const failed = await facegatePhotos.send(path, usable, (index) => {
      facegate.say(out, `Adding photo ${index + 1} of ${usable.length}…`);
      progress.value = 1 + index; // the person, then the photos sent so far
    });
    progress.value = progress.max;
    return failed;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const stop = problem();
    if (stop) return facegate.say(out, stop, "bad");
    const submit = document.getElementById("enroll-submit");
    const usable = chosen.usable();
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
