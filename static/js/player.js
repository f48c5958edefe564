// Players (review page, clip page, share page): a video that cannot play says why in words,
// never a silent black box. On the review page, review.js also keeps Approve disabled until
// the player has loaded the clip.
(function () {
  "use strict";
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
