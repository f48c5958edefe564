// Takedown links in the clip browser: with JavaScript the confirmation opens in a <dialog> on
// the same page, naming the clip and asking for the reason; without it, the link leads to the
// confirmation page, which asks the same. Either way the POST goes to the same URL.
(function () {
  "use strict";
  var dialog = document.getElementById("take-down-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var form = dialog.querySelector("form");
  var heading = dialog.querySelector("h2");
  var poster = dialog.querySelector("img");
  var reason = dialog.querySelector("[name=reason]");
  var submit = dialog.querySelector("button[type=submit]");
  document.querySelectorAll("a[data-take-down]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var title = link.dataset.title;
      form.action = link.href;
      heading.textContent = "Take down “" + title + "”?";
      submit.textContent = "Take “" + title + "” down";
      poster.hidden = !link.dataset.poster;
      if (link.dataset.poster) {
        poster.src = link.dataset.poster;
        poster.alt = "Poster frame of “" + title + "”";
      }
      reason.value = "";
      dialog.showModal();
      reason.focus();
    });
  });
  dialog.querySelector("[data-cancel]").addEventListener("click", function () {
    dialog.close();
  });
})();
