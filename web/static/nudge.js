/* Nudge's only script of its own (the CSP allows no inline script): the CSRF token on htmx requests, and
   confirmation before destructive actions (a form or button with data-confirm="Text" asks before it submits;
   htmx requests honour hx-confirm). */
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRFToken"] = meta.getAttribute("content");
  }
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  var submitter = event.submitter;
  var text = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
  if (text && !window.confirm(text)) {
    event.preventDefault();
  }
});
