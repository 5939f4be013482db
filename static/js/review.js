// Review pages: expand or collapse every resource. Expanding fires each <details>'
// "toggle" event, and htmx loads that resource's field diff once.
(function () {
  "use strict";
  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-rv-expand]");
    if (!button) return;
    const open = button.dataset.rvExpand === "all";
    document.querySelectorAll("details.rv-res").forEach((d) => { d.open = open; });
  });
})();
