// Compare page: two versions played in step. The left (earlier) video leads; the right one
// follows its play, pause, speed and position, and is put back on the leader's time whenever
// it drifts by more than a frame. One play button, one position bar and the frame steps drive
// both; without JavaScript each video keeps its own native controls.
(function () {
  "use strict";
  var lead = document.getElementById("compare-lead");
  var follow = document.getElementById("compare-follow");
  var controls = document.getElementById("compare-controls");
  var player = window.GreenlightPlayer;
  if (!lead || !follow || !controls || !player) return;

  var seek = document.getElementById("compare-seek");
  var speed = document.getElementById("compare-speed");
  var playButton = controls.querySelector('[data-action="play"]');
  // One frame of the slower of the two: closer than that, both show the same moment.
  var tolerance = 1 / Math.min(player.fpsOf(lead), player.fpsOf(follow));
  var frameRequest = null;
  var dragging = false;

  lead.controls = false;
  follow.controls = false;
  controls.hidden = false;

  function followTarget() {
    var end = isFinite(follow.duration) ? follow.duration : Infinity;
    return Math.min(lead.currentTime, end);
  }

  function sync(force) {
    if (follow.playbackRate !== lead.playbackRate) follow.playbackRate = lead.playbackRate;
    var target = followTarget();
    // A drift correction waits for a seek in flight (repeating it would only restart it); a
    // forced one (pause, seek, frame step) supersedes it, or an older target could win.
    if (force ? Math.abs(follow.currentTime - target) > 1e-4
        : !follow.seeking && Math.abs(follow.currentTime - target) > tolerance) {
      follow.currentTime = target;
    }
    var followEnded = isFinite(follow.duration) && lead.currentTime >= follow.duration;
    if (lead.paused || followEnded) {
      if (!follow.paused) follow.pause();
    } else if (follow.paused) {
      follow.play().catch(function () { /* not loaded yet: the next tick tries again */ });
    }
  }

  function show() {
    document.querySelectorAll("[data-timecode-for]").forEach(function (slot) {
      var video = document.getElementById(slot.dataset.timecodeFor);
      if (video) slot.textContent = player.timecode(video.currentTime, player.fpsOf(video));
    });
    if (seek && !dragging) seek.value = String(lead.currentTime);
    if (playButton) playButton.textContent = lead.paused ? "Play both" : "Pause both";
  }

  function tick() {
    frameRequest = null;
    sync(false);
    show();
    if (!lead.paused) frameRequest = window.requestAnimationFrame(tick);
  }

  function togglePlay() {
    if (lead.paused) lead.play().catch(function () { /* not loaded yet */ });
    else lead.pause();
  }

  function step(count) {
    follow.pause();
    player.stepFrames(lead, count);
  }

  lead.addEventListener("loadedmetadata", function () {
    if (seek) seek.max = String(lead.duration);
    show();
  });
  if (lead.readyState >= 1 && seek) seek.max = String(lead.duration);
  lead.addEventListener("play", function () {
    sync(true);
    if (frameRequest === null) tick();
  });
  lead.addEventListener("pause", function () { sync(true); show(); });
  lead.addEventListener("seeking", function () { sync(true); show(); });
  lead.addEventListener("seeked", function () { sync(true); show(); });
  lead.addEventListener("ratechange", function () {
    if (speed) speed.value = String(lead.playbackRate);
    sync(false);
  });
  lead.addEventListener("timeupdate", show);
  follow.addEventListener("seeked", function () {
    // Paused, both must show the same moment exactly, not merely within a frame.
    if (lead.paused && !lead.seeking) sync(true);
    show();
  });

  if (seek) {
    seek.addEventListener("input", function () {
      dragging = true;
      lead.currentTime = parseFloat(seek.value) || 0;
    });
    seek.addEventListener("change", function () { dragging = false; });
  }
  if (speed) {
    speed.addEventListener("change", function () {
      lead.playbackRate = parseFloat(speed.value) || 1;
    });
  }
  controls.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    if (action === "play") togglePlay();
    else if (action === "frame-back") step(-1);
    else if (action === "frame-forward") step(1);
  });

  document.addEventListener("keydown", function (event) {
    if (!player.plainKey(event) || event.shiftKey) return;
    var key = event.key.toLowerCase();
    if (key === " " && /^(BUTTON|A|SUMMARY)$/.test(event.target.tagName)) return;
    if (key === " ") togglePlay();
    else if (key === "k") lead.pause();
    else if (key === ",") step(-1);
    else if (key === ".") step(1);
    else return;
    event.preventDefault();
  });
  show();
})();
