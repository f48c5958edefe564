// Start Swagger UI on /api/docs. Loaded as a file (the CSP allows no inline script); the page
// hands over the document's URL and, for "Try it out" with the browser session, the CSRF token.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  var csrfToken = root.getAttribute("data-csrf-token") || "";
  var safe = { GET: true, HEAD: true, OPTIONS: true };
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    // The online validator would send our document to validator.swagger.io.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      var method = (request.method || "GET").toUpperCase();
      var bearer = request.headers && (request.headers.Authorization || request.headers.authorization);
      // Session-authenticated requests that change something must carry the CSRF token;
      // Bearer requests need none.
      if (!safe[method] && !bearer && csrfToken) {
        request.headers["X-CSRFToken"] = csrfToken;
      }
      return request;
    },
  });
})();
