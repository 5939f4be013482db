// The Errors list: choose errors (one, the page, or all matching the filters) and say
// how many are chosen; the action buttons wait for a choice. Works after htmx swaps.
(() => {
  "use strict";

  function update(form) {
    const boxes = form.querySelectorAll('input[name="ids"]');
    const ticked = Array.from(boxes).filter((b) => b.checked).length;
    const all = form.querySelector("[data-all-matching]");
    const label = form.querySelector("[data-chosen-count]");
    const total = all && all.checked;
    if (label) {
      label.textContent = total
        ? "All matching chosen"
        : ticked
          ? `${ticked} chosen`
          : "None chosen";
    }
    form.querySelectorAll("[data-needs-choice]").forEach((b) => {
      b.disabled = !(ticked || total);
    });
    const head = form.querySelector("[data-select-all]");
    if (head) {
      head.checked = boxes.length > 0 && ticked === boxes.length;
      head.indeterminate = ticked > 0 && ticked < boxes.length;
    }
  }

  document.addEventListener("change", (e) => {
    const form = e.target.closest && e.target.closest("[data-errors-form]");
    if (!form) return;
    if (e.target.matches("[data-select-all]")) {
      form.querySelectorAll('input[name="ids"]').forEach((b) => {
        b.checked = e.target.checked;
      });
    }
    update(form);
  });

  function init(root) {
    root.querySelectorAll("[data-errors-form]").forEach(update);
  }
  document.addEventListener("DOMContentLoaded", () => init(document));
  document.addEventListener("htmx:afterSwap", (e) => init(e.target));
  if (document.readyState !== "loading") init(document);
})();
