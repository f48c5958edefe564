// Comments panel (clip page, review page): clicking a comment's time seeks #player there, a
// thin timeline under the video marks every comment with a time, and "Use current time" fills
// the new comment's at / until from the player. Seeking leaves play or pause as it was.
// Contract with the player: #player is the video; #comment-markers holds one
// <li data-marker-at data-marker-until> per thread; time links carry data-seek.
(function () {
  "use strict";
  var player = document.getElementById("player");
  var markers = document.getElementById("comment-markers");

  function timecode(seconds) {
    // As templates/_time.html writes it: 0:01.5, tenths only when there are any.
    var tenths = Math.round(seconds * 10);
    var whole = Math.floor(tenths / 10);
    var secs = whole % 60;
    return Math.floor(whole / 60) + ":" + (secs < 10 ? "0" : "") + secs + (tenths % 10 ? "." + (tenths % 10) : "");
  }

  function seek(seconds) {
    if (!player || !isFinite(seconds)) return;
    var go = function () { player.currentTime = seconds; };
    if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, { once: true });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("[data-seek]") : null;
    if (!link || !player) return;
    seek(parseFloat(link.dataset.seek));
    var href = link.getAttribute("href") || "";
    if (href.indexOf("#t=") === 0) {
      event.preventDefault();
      history.replaceState(null, "", href);
    }
  });

  document.querySelectorAll("button.use-current-time[data-fill]").forEach(function (button) {
    var input = document.getElementById(button.dataset.fill);
    if (!player || !input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      input.value = (Math.round(player.currentTime * 100) / 100).toString();
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
  });

  if (!player || !markers) return;
  var items = Array.prototype.filter.call(markers.children, function (item) {
    return item.hasAttribute("data-marker-at");
  });
  if (!items.length) return;

  var bar = document.createElement("div");
  bar.id = "comment-timeline";
  bar.className = "comment-timeline";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Comments on the timeline");
  player.insertAdjacentElement("afterend", bar);

  function duration() {
    var known = player.duration;
    if (isFinite(known) && known > 0) return known;
    return parseFloat(markers.dataset.duration) || 0;
  }

  function draw() {
    var total = duration();
    bar.textContent = "";
    items.forEach(function (item) {
      var at = parseFloat(item.dataset.markerAt);
      var until = parseFloat(item.dataset.markerUntil);
      var tick = document.createElement("button");
      tick.type = "button";
      tick.className = "comment-tick" + (isFinite(until) ? " comment-range" : "");
      tick.setAttribute(
        "aria-label",
        "Comment at " + timecode(at) + (isFinite(until) ? " to " + timecode(until) : "")
      );
      tick.title = (item.querySelector(".comment-body") || item).textContent.trim().slice(0, 120);
      tick.dataset.markerFor = item.id;
      if (total > 0) {
        tick.style.left = Math.min(100, (at / total) * 100) + "%";
        if (isFinite(until)) tick.style.width = Math.max(0, ((until - at) / total) * 100) + "%";
      }
      tick.addEventListener("click", function () {
        seek(at);
        item.classList.add("comment-current");
        window.setTimeout(function () { item.classList.remove("comment-current"); }, 1500);
      });
      bar.appendChild(tick);
    });
  }

  draw();
  // The real length is known once the player has read the file's header.
  player.addEventListener("loadedmetadata", draw);
})();
