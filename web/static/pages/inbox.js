/* The inbox's "select every action listed" box (the CSP allows no inline script). */
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.classList || !box.classList.contains("pick-all")) {
    return;
  }
  var form = box.closest("form");
  if (!form) {
    return;
  }
  form.querySelectorAll('input[name="action_id"]').forEach(function (item) {
    item.checked = box.checked;
  });
});
