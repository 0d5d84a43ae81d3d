/* Nudge's only script of its own (the CSP allows no inline script): confirmation before destructive actions.
   A form or button with data-confirm="Text" asks before it submits; htmx requests honour hx-confirm. */
document.addEventListener("submit", function (event) {
  var form = event.target;
  var submitter = event.submitter;
  var text = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
  if (text && !window.confirm(text)) {
    event.preventDefault();
  }
});
