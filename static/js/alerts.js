// Alert rule forms: show only the parameters the chosen kind uses (each parameter field
// lists its kinds in data-kinds). Without JavaScript every field shows, with its help.
(function () {
  "use strict";
  function sync(form) {
    const kind = form.querySelector('select[name="kind"]');
    if (!kind) return;
    form.querySelectorAll("[data-kinds]").forEach((input) => {
      const field = input.closest(".field") || input;
      const used = input.dataset.kinds.split(" ").includes(kind.value);
      field.hidden = !used;
    });
  }
  function syncAll(root) {
    (root || document).querySelectorAll("[data-alert-form]").forEach(sync);
  }
  document.addEventListener("change", (e) => {
    const form = e.target.closest && e.target.closest("[data-alert-form]");
    if (form && e.target.name === "kind") sync(form);
  });
  document.addEventListener("htmx:load", (e) => syncAll(e.target));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => syncAll());
  } else {
    syncAll();
  }
})();
