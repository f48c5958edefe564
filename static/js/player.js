// Players (review page, clip page, share page, compare page).
//
// 1. A video that cannot play says why in words, never a silent black box. On the review page,
//    review.js also keeps Approve disabled until the player has loaded the clip.
// 2. Controls beside the browser's own (templates/_player.html): frame step, speed, J/K/L,
//    loop in/out, a frame-accurate timecode and full screen. They are an extra: without
//    JavaScript the markup stays hidden and the native controls are all there is.
//
// Timecodes are HH:MM:SS:FF with frame = floor(t * fps), the same rule as
// approval/formatting.py's frame_timecode (server-rendered timecodes).
//
// J and backwards: browsers cannot play a video backwards, so J at 1x (or paused) goes into
// "reverse": the video stays paused and jumps back a quarter of a second four times a second,
// which reads as playing backwards at 1x; pressing J again makes it 1.5x then 2x backwards.
// K, L, Space or a frame step ends it.
(function () {
  "use strict";

  //: Absorbs binary floating-point error only (5/24 * 24 is 4.999...): far less than a frame.
  var FRAME_EPSILON = 1e-6;
  //: A seek lands this far into the frame, so the frame shown and the one counted agree.
  var INTO_FRAME = 0.001;
  //: When the frame rate is unknown (older clips): a common one, better than no stepping.
  var FALLBACK_FPS = 30;
  var FORWARD_STEPS = [1, 1.5, 2];
  var REVERSE_TICK_MS = 250;

  function pad(number) { return (number < 10 ? "0" : "") + number; }

  function frameOf(seconds, fps) {
    return Math.max(0, Math.floor(seconds * fps + FRAME_EPSILON));
  }

  // HH:MM:SS:FF. For a fractional rate (29.97) the second is the one the frame starts in, and
  // FF counts from the first frame that starts in that second.
  function timecode(seconds, fps) {
    var frame = frameOf(seconds, fps);
    var whole = Math.floor(frame / fps + FRAME_EPSILON / fps);
    var intoSecond = frame - Math.ceil(whole * fps - FRAME_EPSILON);
    var hours = Math.floor(whole / 3600);
    var minutes = Math.floor(whole / 60) % 60;
    return pad(hours) + ":" + pad(minutes) + ":" + pad(whole % 60) + ":" + pad(intoSecond);
  }

  function fpsOf(video) {
    var fps = parseFloat(video.dataset.fps);
    return fps > 0 && isFinite(fps) ? fps : FALLBACK_FPS;
  }

  // The time that shows frame `frame` (a little into it), clamped to the clip.
  function timeOfFrame(video, frame) {
    var fps = fpsOf(video);
    var last = isFinite(video.duration) ? Math.max(0, Math.ceil(video.duration * fps) - 1) : frame;
    var target = Math.max(0, Math.min(frame, last));
    return target / fps + INTO_FRAME / fps;
  }

  function stepFrames(video, count) {
    video.pause();
    video.currentTime = timeOfFrame(video, frameOf(video.currentTime, fpsOf(video)) + count);
  }

  function typingIn(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function plainKey(event) {
    return !event.ctrlKey && !event.metaKey && !event.altKey && !typingIn(event.target);
  }

  function toggleFullscreen(element) {
    if (document.fullscreenElement) document.exitFullscreen().catch(function () {});
    else if (element.requestFullscreen) element.requestFullscreen().catch(function () {});
  }

  window.GreenlightPlayer = {
    timecode: timecode,
    frameOf: frameOf,
    fpsOf: fpsOf,
    timeOfFrame: timeOfFrame,
    stepFrames: stepFrames,
    typingIn: typingIn,
    plainKey: plainKey,
    toggleFullscreen: toggleFullscreen,
  };

  // --- the controls ---------------------------------------------------------------------------

  function attachControls(video, root) {
    var fps = fpsOf(video);
    var box = video.closest(".player") || video.parentElement;
    var readout = root.querySelector("[data-timecode]");
    var durationSlot = root.querySelector("[data-duration]");
    var stateSlot = root.querySelector("[data-transport-state]");
    var speed = root.querySelector("[data-speed]");
    var playButton = root.querySelector('[data-action="play"]');
    var loopButton = root.querySelector('[data-action="loop"]');
    var loopRange = root.querySelector("[data-loop-range]");
    var loop = { on: false, start: null, end: null };
    var reverse = { timer: null, rate: 1 };
    var frameRequest = null;

    function loopStart() { return loop.start === null ? 0 : loop.start; }
    function loopEnd() { return loop.end === null ? video.duration : loop.end; }

    function showState() {
      if (stateSlot) {
        stateSlot.textContent = reverse.timer ? "◀◀ " + reverse.rate + "× back"
          : (!video.paused && video.playbackRate !== 1 ? video.playbackRate + "×" : "");
      }
      if (playButton) playButton.textContent = video.paused ? "Play" : "Pause";
    }

    function showTime() {
      if (readout) readout.textContent = timecode(video.currentTime, fps);
    }

    function showLoop() {
      if (loopButton) loopButton.setAttribute("aria-pressed", loop.on ? "true" : "false");
      if (!loopRange) return;
      if (loop.start === null && loop.end === null) loopRange.textContent = "whole clip";
      else {
        loopRange.textContent = timecode(loopStart(), fps) + " – " +
          (loop.end === null ? "end" : timecode(loop.end, fps));
      }
    }

    // While playing, check the loop and the readout every frame; timeupdate alone comes only
    // four times a second, far too coarse for an out point.
    function tick() {
      frameRequest = null;
      if (loop.on && video.currentTime >= loopEnd()) video.currentTime = loopStart();
      showTime();
      if (!video.paused) frameRequest = window.requestAnimationFrame(tick);
    }

    function stopReverse() {
      if (reverse.timer) window.clearInterval(reverse.timer);
      reverse.timer = null;
      reverse.rate = 1;
      showState();
    }

    function startReverse(rate) {
      stopReverse();
      video.pause();
      reverse.rate = rate;
      reverse.timer = window.setInterval(function () {
        var floor = loop.on ? loopStart() : 0;
        var next = video.currentTime - (REVERSE_TICK_MS / 1000) * reverse.rate;
        if (next <= floor) {
          video.currentTime = loop.on ? loopEnd() : 0;
          if (!loop.on) stopReverse();
        } else {
          video.currentTime = next;
        }
      }, REVERSE_TICK_MS);
      showState();
    }

    function play() {
      stopReverse();
      if (loop.on && (video.currentTime < loopStart() || video.currentTime >= loopEnd())) {
        video.currentTime = loopStart();
      }
      return video.play().catch(function () { /* not loaded yet */ });
    }

    function togglePlay() {
      if (video.paused && !reverse.timer) play();
      else { stopReverse(); video.pause(); }
    }

    function forward() {  // L
      if (reverse.timer || video.paused) {
        video.playbackRate = 1;
        play();
        return;
      }
      var rate = video.playbackRate;
      var next = FORWARD_STEPS.filter(function (step) { return step > rate; })[0];
      video.playbackRate = next || FORWARD_STEPS[FORWARD_STEPS.length - 1];
    }

    function back() {  // J
      if (reverse.timer) {
        var faster = FORWARD_STEPS.filter(function (step) { return step > reverse.rate; })[0];
        reverse.rate = faster || FORWARD_STEPS[FORWARD_STEPS.length - 1];
        showState();
        return;
      }
      var rate = video.playbackRate;
      if (!video.paused && rate > 1) {
        var slower = FORWARD_STEPS.filter(function (step) { return step < rate; });
        video.playbackRate = slower[slower.length - 1];
        return;
      }
      startReverse(1);
    }

    function markIn() {
      loop.start = video.currentTime;
      if (loop.end !== null && loop.end <= loop.start) loop.end = null;
      showLoop();
    }

    function markOut() {
      loop.end = video.currentTime;
      if (loop.start !== null && loop.start >= loop.end) loop.start = null;
      showLoop();
    }

    function toggleLoop() {
      loop.on = !loop.on;
      showLoop();
      if (loop.on && !video.paused) tick();
    }

    var actions = {
      "frame-back": function () { stopReverse(); stepFrames(video, -1); },
      "frame-forward": function () { stopReverse(); stepFrames(video, 1); },
      play: togglePlay,
      "mark-in": markIn,
      "mark-out": markOut,
      loop: toggleLoop,
      fullscreen: function () { toggleFullscreen(box); },
    };
    root.addEventListener("click", function (event) {
      var button = event.target.closest("[data-action]");
      if (button && actions[button.dataset.action]) actions[button.dataset.action]();
    });
    if (speed) {
      speed.addEventListener("change", function () {
        video.playbackRate = parseFloat(speed.value) || 1;
      });
    }
    video.addEventListener("ratechange", function () {
      if (speed) speed.value = String(video.playbackRate);
      showState();
    });
    video.addEventListener("play", function () { showState(); tick(); });
    video.addEventListener("pause", showState);
    video.addEventListener("timeupdate", showTime);
    video.addEventListener("seeked", showTime);
    video.addEventListener("ended", function () {
      if (loop.on) { video.currentTime = loopStart(); play(); }
    });
    video.addEventListener("loadedmetadata", function () {
      if (durationSlot && isFinite(video.duration)) durationSlot.textContent = timecode(video.duration, fps);
      showTime();
    });
    if (video.readyState >= 1 && durationSlot) durationSlot.textContent = timecode(video.duration, fps);

    if (root.hasAttribute("data-keys")) {
      var keys = {
        " ": togglePlay,
        k: function () { stopReverse(); video.pause(); },
        l: forward,
        j: back,
        ",": actions["frame-back"],
        ".": actions["frame-forward"],
        i: markIn,
        o: markOut,
        f: actions.fullscreen,
      };
      document.addEventListener("keydown", function (event) {
        if (!plainKey(event) || event.shiftKey && event.key !== " ") return;
        // Space already means "press" on buttons, links and the video's own controls.
        if (event.key === " " && (event.target === video ||
            /^(BUTTON|A|SUMMARY)$/.test(event.target.tagName))) return;
        var handler = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
        if (!handler) return;
        event.preventDefault();
        handler();
      });
    }
    root.hidden = false;
    showTime();
    showState();
    showLoop();
  }

  document.querySelectorAll("[data-controls-for]").forEach(function (root) {
    var video = document.getElementById(root.dataset.controlsFor);
    if (video) attachControls(video, root);
  });

  // The shortcuts dialog: ? opens it wherever the page has one.
  var dialog = document.getElementById("shortcuts-dialog");
  if (dialog && dialog.showModal) {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "?" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (typingIn(event.target) || dialog.open) return;
      event.preventDefault();
      dialog.showModal();
    });
    document.querySelectorAll("[data-opens-shortcuts]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { dialog.showModal(); });
    });
  }

  // --- a video that cannot play ----------------------------------------------------------------

  var player = document.getElementById("player");
  var slot = document.getElementById("player-error");
  if (!player || !slot) return;

  var reasons = {
    1: "Loading the video was stopped.",
    2: "The video could not be downloaded (a network or storage problem). Reload to try again.",
    3: "This browser could not decode the video.",
    4: "This browser cannot play this video's format.",
  };
  var statusWords = {
    410: "The stored file no longer matches the one that was checked, so it is not shown.",
    503: "Clip storage is not answering right now. Reload in a minute.",
  };

  function source() {
    var child = player.querySelector("source");
    return player.currentSrc || player.getAttribute("src") || (child && child.src) || "";
  }

  function say(text) {
    slot.textContent = text + (slot.dataset.advice ? " " + slot.dataset.advice : "");
    slot.hidden = false;
    player.dispatchEvent(new CustomEvent("greenlight:unplayable", { detail: text }));
  }

  function failed() {
    var code = player.error ? player.error.code : 4;
    var text = reasons[code] || reasons[4];
    var url = source();
    if (!url) { say(text); return; }
    // The media element hides the HTTP answer; ask once more so a refusal is named.
    fetch(url, { method: "HEAD", credentials: "same-origin", redirect: "follow" })
      .then(function (response) { say(statusWords[response.status] || text); })
      .catch(function () { say(text); });
  }

  player.addEventListener("error", failed);
  // With <source> children the error fires on the last source, not on the video.
  player.querySelectorAll("source").forEach(function (child) {
    child.addEventListener("error", failed);
  });
  player.addEventListener("loadedmetadata", function () {
    if (player.videoWidth === 0 && player.videoHeight === 0) say(reasons[4]);
  });
  if (player.error) failed();
})();
