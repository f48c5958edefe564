// Clip page: a rejection's timecode link seeks the player to that moment.
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) return;
  function seek(seconds) {
    var go = function () { player.currentTime = seconds; player.focus(); };
    if (player.readyState >= 1) go(); else player.addEventListener("loadedmetadata", go, { once: true });
  }
  document.querySelectorAll("a.seek").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      seek(parseFloat(link.dataset.seconds));
      history.replaceState(null, "", link.getAttribute("href"));
    });
  });
  var match = /^#t=([0-9.]+)$/.exec(window.location.hash);
  if (match) seek(parseFloat(match[1]));
})();

// Copy buttons: copy the named input's value and say so.
(function () {
  "use strict";
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copy);
      var status = (button.closest(".field") || button.parentNode).querySelector(".copy-status");
      input.select();
      var done = function () { if (status) status.textContent = "Copied."; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () {
        document.execCommand("copy"); done();
      });
      else { document.execCommand("copy"); done(); }
    });
  });
})();

// A clip being checked: poll its status and reload once it moves on (clip page, My clips).
(function () {
  "use strict";
  var watched = document.querySelectorAll("[data-status-url][data-status='verifying']");
  if (!watched.length) return;
  var poll = function () {
    if (document.hidden) return;
    watched.forEach(function (slot) {
      fetch(slot.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body) return;
          if (body.status !== "verifying") { window.location.reload(); return; }
          var step = slot.querySelector("[data-step]");
          if (step && body.step) step.textContent = body.step;
        })
        .catch(function () { /* offline for a moment: the next poll tries again */ });
    });
  };
  window.setInterval(poll, 2000);
})();
