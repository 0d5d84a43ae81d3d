// Starts Swagger UI on /api/v1/docs (a file, not an inline script: the Content-Security-Policy allows 'self' only).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    // Session calls from the page send the cookie; writes need the CSRF header, so "Try it out" suits GETs
    // or an API token entered under "Authorize".
    withCredentials: true,
  });
})();
