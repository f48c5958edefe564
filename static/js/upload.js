// Browser-direct upload: details to the app, bytes straight to storage with a progress bar,
// then "done" to the app, which verifies the file. Without this script the form posts the
// file to the app instead (one file).
//
// Several files, chosen or dropped, become several clips, sent one after another, each with
// its own row, bar and result. One file behaves as it always did: its clip page opens when the
// app has it.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;

  var fileInput = form.querySelector("input[type=file]");
  var dropZone = document.getElementById("drop-zone");
  var list = document.getElementById("upload-files");
  var titleInput = form.querySelector("input[name=title]");
  var manyHint = document.getElementById("title-many-hint");
  var submit = document.getElementById("upload-submit");
  var cancel = document.getElementById("upload-cancel");
  var retry = document.getElementById("upload-retry");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var statusLine = document.getElementById("upload-status");
  var errorLine = document.getElementById("upload-error");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var TITLE_MAX = Number(titleInput.getAttribute("maxlength")) || 200;

  // One job per file: {file, row, bar, line, link, session, state}. state is "ready",
  // "interrupted" (may be retried), "refused" (the app said no) or "done".
  var jobs = [];
  var xhr = null;
  var busy = false;
  var cancelled = false;

  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }
  function clock(seconds) {
    if (!isFinite(seconds)) return "…";
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }
  function show(el, on) { el.hidden = !on; }
  function many() { return jobs.length > 1; }
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

  // --- the files: rows, the picker, the drop zone ------------------------------------------

  function row(file, index) {
    var item = document.createElement("li");
    item.className = "upload-file";
    var name = document.createElement("span");
    name.className = "upload-file-name";
    name.textContent = file.name;
    var size = document.createElement("span");
    size.className = "upload-file-size muted";
    size.textContent = mb(file.size);
    var fileBar = document.createElement("progress");
    fileBar.max = 100;
    fileBar.value = 0;
    fileBar.setAttribute("aria-label", "Upload progress of " + file.name);
    var line = document.createElement("span");
    line.className = "upload-file-status";
    line.setAttribute("role", "status");
    line.textContent = "Ready";
    var link = document.createElement("a");
    link.className = "upload-file-link";
    link.hidden = true;
    link.textContent = "Open clip " + (index + 1);
    item.append(name, size, fileBar, line, link);
    return { file: file, row: item, bar: fileBar, line: line, link: link, session: null, state: "ready" };
  }

  function choose(files) {
    if (busy) return;
    jobs = Array.prototype.slice.call(files).map(row);
    list.replaceChildren.apply(list, jobs.map(function (job) { return job.row; }));
    show(list, jobs.length > 0);
    show(manyHint, many());
    // With several files the title is optional: each clip is named after its file.
    titleInput.required = !many();
    clearFieldErrors();
    setError("");
    show(retry, false);
  }

  function titleFor(job, index) {
    var typed = titleInput.value.trim();
    if (!many()) return titleInput.value;
    if (!typed) return job.file.name.replace(/\.[^.]+$/, "").slice(0, TITLE_MAX) || job.file.name;
    var suffix = index === 0 ? "" : " (" + (index + 1) + ")";
    return typed.slice(0, TITLE_MAX - suffix.length) + suffix;
  }

  fileInput.addEventListener("change", function () { choose(fileInput.files); });
  ["dragenter", "dragover"].forEach(function (type) {
    dropZone.addEventListener(type, function (event) {
      event.preventDefault();
      if (!busy) dropZone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropZone.addEventListener(type, function () { dropZone.classList.remove("dragging"); });
  });
  dropZone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (busy || !event.dataTransfer || !event.dataTransfer.files.length) return;
    // The picker shows what was dropped too (browsers allow setting it from a drop).
    try { fileInput.files = event.dataTransfer.files; } catch (e) { /* older browsers */ }
    choose(event.dataTransfer.files);
  });

  // --- the title's count -------------------------------------------------------------------

  var counter = document.getElementById(titleInput.dataset.counted);
  var counterLive = document.getElementById("title-count-live");
  function count() {
    var used = titleInput.value.length;
    counter.textContent = "(" + used + " of " + TITLE_MAX + " used)";
    show(counter, true);
    // Said aloud only at the limit, not at every key.
    counterLive.textContent = used >= TITLE_MAX ? "The title is at its limit of " + TITLE_MAX + " characters." : "";
  }
  titleInput.addEventListener("input", count);
  count();

  // --- sending -----------------------------------------------------------------------------

  var totalBytes = 0;
  var sentBefore = 0;

  function start(event) {
    event.preventDefault();
    if (busy) return; // a double click must not make two clips
    clearFieldErrors();
    setError("");
    if (!jobs.length && fileInput.files.length) choose(fileInput.files);
    if (!jobs.length) { fieldErrors({ file: ["Choose a video file."] }); return; }
    if (!jobs.some(function (job) { return job.state !== "done" && job.state !== "refused"; })) {
      setError("These files are uploaded. Choose more files to upload them too.");
      return;
    }
    busy = true;
    cancelled = false;
    submit.disabled = true;
    show(retry, false);
    totalBytes = 0;
    jobs.forEach(function (job) { if (job.state === "ready" || job.state === "interrupted") totalBytes += job.file.size; });
    jobs.forEach(function (job) { job.tried = false; });
    sentBefore = 0;
    bar.value = 0;
    show(progress, true);
    next();
  }

  function next() {
    if (cancelled) return;
    var index = -1;
    for (var i = 0; i < jobs.length; i++) {
      if ((jobs[i].state === "ready" || jobs[i].state === "interrupted") && !jobs[i].tried) { index = i; break; }
    }
    if (index < 0) { allDone(); return; }
    var job = jobs[index];
    job.tried = true;
    if (job.session) { renew(job, index); return; }
    var data = new FormData(form);
    data.delete("file");
    job.title = titleFor(job, index);
    data.set("title", job.title);
    data.append("filename", job.file.name);
    data.append("size", String(job.file.size));
    job.line.textContent = "Preparing the upload…";
    statusLine.textContent = many() ? "Preparing " + job.file.name + "…" : "Preparing the upload…";
    request("POST", form.dataset.directUrl, data, function (status, body) {
      if (status === 201 && body) {
        job.session = body;
        transfer(job, index);
        return;
      }
      var message = status === 413 ? "The file is too large."
        : status === 429 ? "Too many uploads were started in a short time; wait a minute, then try again."
        : "The upload could not start. Check your connection and try again.";
      if (!many()) {
        show(progress, false);
        if (body && body.errors) fieldErrors(body.errors);
        else setError(message);
        job.state = "ready";
        job.line.textContent = "Not sent";
        idle(false);
        return;
      }
      if (body && body.errors) {
        // A title at fault is the form's; the file's own refusal stays on its row.
        var own = [];
        Object.keys(body.errors).forEach(function (name) { own = own.concat(body.errors[name]); });
        message = own.join(" ");
        job.state = "refused";
      } else {
        job.state = "interrupted";
      }
      job.line.textContent = "Not sent: " + message;
      sentBefore += job.file.size;
      next();
    });
  }

  function renew(job, index) {
    // A fresh ticket: the old one may have expired while the person was away.
    request("POST", job.session.ticket_url, null, function (status, body) {
      if (status === 200 && body) {
        job.session = body;
        transfer(job, index);
      } else {
        job.session = null;
        job.state = "refused";
        job.line.textContent = "This upload can no longer be resumed; choose the file again.";
        if (!many()) {
          setError("This upload can no longer be resumed; press Upload clip to start again.");
          job.state = "ready";
          idle(false);
          return;
        }
        sentBefore += job.file.size;
        next();
      }
    });
  }

  function transfer(job, index) {
    var ticket = job.session.upload;
    var file = job.file;
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
    job.bar.value = 0;
    job.line.textContent = "Sending…";
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      var seconds = (Date.now() - started) / 1000;
      var speed = seconds > 0 ? e.loaded / seconds : 0;
      var percent = Math.floor((e.loaded / e.total) * 100);
      job.bar.value = percent;
      var detail = percent + "% · " + mb(e.loaded) + " of " + mb(e.total) +
        " · " + mb(speed) + "/s · " + clock(speed ? (e.total - e.loaded) / speed : Infinity) + " left";
      job.line.textContent = detail;
      if (many()) {
        bar.value = totalBytes ? Math.floor(((sentBefore + e.loaded) / totalBytes) * 100) : 0;
        statusLine.textContent = "File " + (index + 1) + " of " + jobs.length + ": " + detail;
      } else {
        bar.value = percent;
        statusLine.textContent = detail;
      }
    };
    xhr.onload = function () {
      xhr = null;
      if (this.status >= 200 && this.status < 300) { finish(job); return; }
      interrupted(job, "The transfer failed (" + this.status + ").");
    };
    xhr.onerror = function () {
      xhr = null;
      interrupted(job, "The transfer was interrupted.");
    };
    xhr.onabort = function () {
      xhr = null;
      cancelled = true;
      job.state = "interrupted";
      job.line.textContent = "Cancelled";
      setError("Upload cancelled. Your details are kept: press Retry upload to send the file" + (many() ? "s" : "") + " again.");
      idle(true);
    };
    xhr.send(body);
  }

  function interrupted(job, why) {
    job.state = "interrupted";
    job.line.textContent = why + " Press Retry upload.";
    if (!many()) {
      setError(why + " Your details are kept: press Retry upload.");
      idle(true);
      return;
    }
    sentBefore += job.file.size;
    next();
  }

  function finish(job) {
    show(cancel, false);
    job.bar.value = 100;
    job.line.textContent = "Uploaded. Checking the file…";
    if (!many()) {
      bar.value = 100;
      statusLine.textContent = "Uploaded. Checking the file…";
    }
    request("POST", job.session.complete_url, null, function (status, body) {
      // 202: the upload is taken; a job checks it now and the clip page follows along.
      if ((status === 202 || status === 200) && body && body.status !== "failed") {
        job.state = "done";
        if (!many()) {
          statusLine.textContent = "Received: " + (body.step || body.label) + ".";
          window.location.assign(body.clip_url);
          return;
        }
        landed(job, body);
        sentBefore += job.file.size;
        next();
      } else if (body && body.status === "failed") {
        // The clip is closed; a new submit starts a new one.
        job.session = null;
        if (!many()) {
          job.state = "ready";
          show(progress, false);
          setError("The file was not accepted: " + body.failure_reason + ".");
          idle(false);
          return;
        }
        job.state = "refused";
        job.row.dataset.status = "failed";
        job.line.textContent = "Not accepted: " + body.failure_reason + ".";
        sentBefore += job.file.size;
        next();
      } else {
        job.state = "interrupted";
        if (!many()) {
          setError("The file arrived but could not be checked just now. Press Retry upload.");
          idle(true);
          return;
        }
        job.line.textContent = "Arrived, but could not be checked just now. Press Retry upload.";
        sentBefore += job.file.size;
        next();
      }
    });
  }

  // A clip of several: its row says where it is and follows it while the file is checked.
  function landed(job, body) {
    job.row.dataset.status = body.status;
    job.line.textContent = body.status === "verifying" ? "Checking: " + (body.step || body.label) + "…" : body.label.charAt(0).toUpperCase() + body.label.slice(1);
    job.link.href = body.clip_url;
    job.link.textContent = "Open “" + job.title + "”";
    show(job.link, true);
    if (body.status === "verifying") {
      window.setTimeout(function () {
        request("GET", body.clip_url + "/status", null, function (status, now) {
          if (status === 200 && now) {
            if (now.status === "failed") {
              job.row.dataset.status = "failed";
              job.line.textContent = "Not accepted: " + now.failure_reason + ".";
            } else {
              landed(job, now);
            }
          } else {
            landed(job, body);
          }
        });
      }, 1000);
    }
  }

  function allDone() {
    var done = jobs.filter(function (job) { return job.state === "done"; }).length;
    var retryable = jobs.some(function (job) { return job.state === "interrupted"; });
    bar.value = 100;
    statusLine.textContent = done + " of " + jobs.length + " files uploaded" + (retryable ? "; press Retry upload for the rest." : ".");
    idle(retryable);
  }

  function again() {
    if (busy) return;
    var pending = jobs.some(function (job) { return job.state === "interrupted"; });
    if (!pending) return;
    start({ preventDefault: function () {} });
  }

  form.addEventListener("submit", start);
  cancel.addEventListener("click", function () { if (xhr) xhr.abort(); });
  retry.addEventListener("click", again);
})();
