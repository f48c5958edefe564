// Review pages. Everything here is an extra: without JavaScript the forms and links still work.
//
// Queue page (#review-queue): live counts from /review/counts, J/K to move through the list.
// Review page (#review-clip): lease renewal while open, the review's keys (A, R, Shift+N/P),
// "use current time".
(function () {
  "use strict";

  function typingIn(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function plainKey(event) {
    return !event.ctrlKey && !event.metaKey && !event.altKey && !typingIn(event.target);
  }

  // --- queue page ---------------------------------------------------------------------------

  var queue = document.getElementById("review-queue");
  if (queue) {
    var countsUrl = queue.dataset.countsUrl;
    var show = function (name, text) {
      var slot = queue.querySelector('[data-count="' + name + '"]');
      if (slot) slot.textContent = text;
    };
    var ageText = function (seconds) {
      if (seconds === null) return "—";
      var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
      for (var i = 0; i < units.length; i++) {
        var count = Math.floor(seconds / units[i][1]);
        if (count >= 1) return count + " " + units[i][0] + (count === 1 ? "" : "s") + " ago";
      }
      return "just now";
    };
    var refresh = function () {
      if (document.hidden) return;
      fetch(countsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (counts) {
          if (!counts) return;
          // The label says when the number is an estimate ("about 120,000", "more than 1,000").
          show("waiting", counts.waiting_label);
          var waiting = queue.querySelector('[data-count="waiting"]');
          if (waiting) waiting.dataset.precision = counts.waiting_precision;
          show("in_review", String(counts.in_review));
          show("oldest", ageText(counts.oldest_age_seconds));
        })
        .catch(function () { /* offline for a moment: the next poll tries again */ });
    };
    window.setInterval(refresh, 20000);
    document.addEventListener("visibilitychange", refresh);

    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
    var selected = -1;
    var select = function (index) {
      if (!rows.length) return;
      if (selected >= 0) rows[selected].classList.remove("selected");
      selected = Math.max(0, Math.min(rows.length - 1, index));
      rows[selected].classList.add("selected");
      var link = rows[selected].querySelector("a");
      if (link) link.focus();
    };
    document.addEventListener("keydown", function (event) {
      if (!plainKey(event)) return;
      if (event.key === "j") { event.preventDefault(); select(selected + 1); }
      else if (event.key === "k") { event.preventDefault(); select(selected - 1); }
    });
  }

  // --- review page --------------------------------------------------------------------------

  var page = document.getElementById("review-clip");
  if (!page) return;
  var player = document.getElementById("player");
  var claimState = document.getElementById("claim-state");

  if (page.dataset.renewUrl) {
    var every = Math.max(5, parseInt(page.dataset.renewSeconds, 10) || 60) * 1000;
    var timer = window.setInterval(function () {
      fetch(page.dataset.renewUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": page.dataset.csrfToken, Accept: "application/json" },
      })
        .then(function (response) {
          if (response.ok) return response.json().then(function (body) {
            var slot = page.querySelector("[data-claim-expires]");
            if (slot && body.expires_at) {
              slot.setAttribute("datetime", body.expires_at);
              slot.textContent = body.expires_at.slice(11, 16) + " UTC";
            }
          });
          if (response.status === 409 || response.status === 404) {
            window.clearInterval(timer);
            if (claimState) {
              claimState.textContent = "Your claim on this clip has ended (it lapsed or someone " +
                "else took it). Reload the page to see where it stands.";
            }
          }
          return null;
        })
        .catch(function () { /* a lost renewal is retried at the next tick */ });
    }, every);
  }

  var useNow = document.getElementById("use-current-time");
  var timecode = document.getElementById("timecode");
  if (useNow && timecode && player) {
    useNow.hidden = false;
    useNow.addEventListener("click", function () {
      timecode.value = (Math.round(player.currentTime * 100) / 100).toString();
      timecode.focus();
    });
  }

  var rejectPanel = document.getElementById("reject-panel");
  var approveForm = document.getElementById("approve-form");
  var approveButton = document.getElementById("approve-button");

  // Approve waits until the player has the clip: nobody approves what did not load. The
  // decision also carries how much of the clip this player actually played.
  if (approveButton && player) {
    var hint = document.getElementById("approve-hint");
    var loaded = function () {
      approveButton.disabled = false;
      if (hint) hint.hidden = true;
    };
    if (player.readyState >= 2) loaded();
    else {
      approveButton.disabled = true;
      if (hint) hint.hidden = false;
      player.addEventListener("loadeddata", loaded, { once: true });
    }
    player.addEventListener("greenlight:unplayable", function () {
      approveButton.disabled = true;
      if (hint) hint.textContent = "The clip did not play, so it cannot be approved here.";
    });
  }
  var playedSeconds = function () {
    var total = 0;
    for (var i = 0; player && i < player.played.length; i++) {
      total += player.played.end(i) - player.played.start(i);
    }
    return Math.round(total * 1000) / 1000;
  };
  document.querySelectorAll("input[data-played]").forEach(function (input) {
    input.form.addEventListener("submit", function () { input.value = String(playedSeconds()); });
  });
  // The player's keys (Space, J/K/L, frame step, loop, full screen) and ? for the shortcuts
  // dialog are player.js's; these are the review's own. Moving through the queue is Shift+N /
  // Shift+P, since J and K belong to the transport as in every editor.
  document.addEventListener("keydown", function (event) {
    if (!plainKey(event)) return;
    var key = event.key;
    if (key === "N" && event.shiftKey && page.dataset.nextUrl) {
      event.preventDefault();
      window.location.assign(page.dataset.nextUrl);
    } else if (key === "P" && event.shiftKey && page.dataset.prevUrl) {
      event.preventDefault();
      window.location.assign(page.dataset.prevUrl);
    } else if (event.shiftKey) {
      return;
    } else if (key === "a" && approveForm && !(approveButton && approveButton.disabled)) {
      event.preventDefault();
      if (approveForm.requestSubmit) approveForm.requestSubmit(approveButton || undefined);
      else approveForm.submit();
    } else if (key === "r" && rejectPanel) {
      event.preventDefault();
      rejectPanel.open = true;
      var first = rejectPanel.querySelector("select, textarea");
      if (first) first.focus();
    }
  });
})();
