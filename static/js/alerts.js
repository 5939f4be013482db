// Alert rule forms: show only the parameters the chosen kind uses, each named as that
// kind names it (data-kinds, data-labels, data-bounds on each parameter's input, from
// runs/alerts.py's KINDS). Without JavaScript every parameter shows, with its help.
(function () {
  "use strict";
  function sync(form) {
    const kind = form.querySelector('select[name="kind"]');
    if (!kind) return;
    form.querySelectorAll("[data-kinds]").forEach((input) => {
      const field = input.closest(".field") || input;
      const used = input.dataset.kinds.split(" ").includes(kind.value);
      field.hidden = !used;
      if (!used) return;
      const label = form.querySelector(`label[for="${input.id}"]`);
      const help = document.getElementById(`${input.id}_helptext`);
      const labels = JSON.parse(input.dataset.labels || "{}");
      const bounds = JSON.parse(input.dataset.bounds || "{}");
      if (label && labels[kind.value]) label.textContent = labels[kind.value];
      if (help && bounds[kind.value]) help.textContent = `From ${bounds[kind.value].replace(/^from /, "")}.`;
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
