// Browser-direct upload: details to the app, bytes straight to storage with a progress bar,
// then "done" to the app, which verifies the file. Without this script the form posts the
// file to the app instead.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;

  var fileInput = form.querySelector("input[type=file]");
  var submit = document.getElementById("upload-submit");
  var cancel = document.getElementById("upload-cancel");
  var retry = document.getElementById("upload-retry");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var statusLine = document.getElementById("upload-status");
  var errorLine = document.getElementById("upload-error");
  var csrf = form.querySelector("input[name=csrf_token]").value;

  var session = null; // {clip, upload, ticket_url, complete_url, clip_url} once the app made the clip
  var xhr = null;
  var busy = false;

  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }
  function clock(seconds) {
    if (!isFinite(seconds)) return "…";
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function show(el, on) { el.hidden = !on; }
  function setError(message) {
    errorLine.textContent = message || "";
    show(errorLine, !!message);
  }
  function clearFieldErrors() {
    form.querySelectorAll(".js-error").forEach(function (el) { el.remove(); });
  }
  function fieldErrors(errors) {
    var general = [];
    Object.keys(errors).forEach(function (name) {
      var input = form.querySelector("[name=" + name + "]");
      if (name === "filename" || name === "size") input = fileInput;
      if (!input) { general = general.concat(errors[name]); return; }
      var list = document.createElement("ul");
      list.className = "errors js-error";
      errors[name].forEach(function (message) {
        var item = document.createElement("li");
        item.textContent = message;
        list.appendChild(item);
      });
      input.closest(".field").appendChild(list);
    });
    if (general.length) setError(general.join(" "));
  }
  function idle(canRetry) {
    busy = false;
    submit.disabled = false;
    show(cancel, false);
    show(retry, !!canRetry);
  }

  function request(method, url, body, onDone) {
    var r = new XMLHttpRequest();
    r.open(method, url);
    r.setRequestHeader("Accept", "application/json");
    r.setRequestHeader("X-CSRFToken", csrf);
    r.onload = function () {
      var data = null;
      try { data = JSON.parse(r.responseText); } catch (e) { data = null; }
      onDone(r.status, data);
    };
    r.onerror = function () { onDone(0, null); };
    r.send(body);
  }

  function start(event) {
    event.preventDefault();
    if (busy) return; // a double click must not make two clips
    var file = fileInput.files[0];
    clearFieldErrors();
    setError("");
    if (!file) { fieldErrors({ file: ["Choose a video file."] }); return; }
    busy = true;
    submit.disabled = true;
    if (session) { transfer(file); return; }
    var data = new FormData(form);
    data.delete("file");
    data.append("filename", file.name);
    data.append("size", String(file.size));
    statusLine.textContent = "Preparing the upload…";
    show(progress, true);
    request("POST", form.dataset.directUrl, data, function (status, body) {
      if (status === 201 && body) {
        session = body;
        transfer(file);
      } else {
        show(progress, false);
        if (body && body.errors) fieldErrors(body.errors);
        else setError(status === 413 ? "The file is too large." : "The upload could not start. Check your connection and try again.");
        idle(false);
      }
    });
  }

  function transfer(file) {
    var ticket = session.upload;
    var started = Date.now();
    xhr = new XMLHttpRequest();
    xhr.open(ticket.method, ticket.url);
    var body;
    if (ticket.method === "POST") {
      body = new FormData();
      Object.keys(ticket.fields).forEach(function (k) { body.append(k, ticket.fields[k]); });
      body.append("file", file);
    } else {
      Object.keys(ticket.headers).forEach(function (k) {
        // The browser sets Content-Length itself and refuses to be told.
        if (k.toLowerCase() !== "content-length") xhr.setRequestHeader(k, ticket.headers[k]);
      });
      body = file;
    }
    show(progress, true);
    show(cancel, true);
    show(retry, false);
    bar.value = 0;
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      var seconds = (Date.now() - started) / 1000;
      var speed = seconds > 0 ? e.loaded / seconds : 0;
      var percent = Math.floor((e.loaded / e.total) * 100);
      bar.value = percent;
      statusLine.textContent = percent + "% · " + mb(e.loaded) + " of " + mb(e.total) +
        " · " + mb(speed) + "/s · " + clock(speed ? (e.total - e.loaded) / speed : Infinity) + " left";
    };
    xhr.onload = function () {
      xhr = null;
      if (this.status >= 200 && this.status < 300) { finish(); return; }
      setError("The transfer failed (" + this.status + "). Your details are kept: press Retry upload.");
      idle(true);
    };
    xhr.onerror = function () {
      xhr = null;
      setError("The transfer was interrupted. Your details are kept: press Retry upload.");
      idle(true);
    };
    xhr.onabort = function () {
      xhr = null;
      setError("Upload cancelled. Your details are kept: press Retry upload to send the file again.");
      idle(true);
    };
    xhr.send(body);
  }

  function finish() {
    show(cancel, false);
    bar.value = 100;
    statusLine.textContent = "Uploaded. Checking the file…";
    request("POST", session.complete_url, null, function (status, body) {
      // 202: the upload is taken; a job checks it now and the clip page follows along.
      if ((status === 202 || status === 200) && body && body.status !== "failed") {
        statusLine.textContent = "Received: " + (body.step || body.label) + ".";
        window.location.assign(body.clip_url);
      } else if (body && body.status === "failed") {
        // The clip is closed; a new submit starts a new one.
        session = null;
        show(progress, false);
        setError("The file was not accepted: " + body.failure_reason + ".");
        idle(false);
      } else {
        setError("The file arrived but could not be checked just now. Press Retry upload.");
        idle(true);
      }
    });
  }

  function again() {
    if (busy || !session) return;
    busy = true;
    submit.disabled = true;
    setError("");
    // A fresh ticket: the old one may have expired while the person was away.
    request("POST", session.ticket_url, null, function (status, body) {
      if (status === 200 && body) {
        session = body;
        transfer(fileInput.files[0]);
      } else {
        session = null;
        setError("This upload can no longer be resumed; press Upload clip to start again.");
        idle(false);
      }
    });
  }

  form.addEventListener("submit", start);
  cancel.addEventListener("click", function () { if (xhr) xhr.abort(); });
  retry.addEventListener("click", again);
})();
