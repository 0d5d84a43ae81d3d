/* The team screen's Copy button (the CSP allows no inline script): copies a new token's secret. */
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) {
    return;
  }
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) {
    return;
  }
  field.select();
  var done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, function () {});
  } else if (document.execCommand && document.execCommand("copy")) {
    done();
  }
});
