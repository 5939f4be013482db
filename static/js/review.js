// Review pages: expand or collapse every resource. Each resource's field diff loads when
// it is first expanded ("toggle once"); "expand all" instead asks for the diffs not yet
// loaded in a few batch requests (one per 50 resources), swapped in out-of-band.
(function () {
  "use strict";
  const BATCH = 50;

  function unloaded(details) {
    return !details.open && details.querySelector(".rv-res-body > .rv-loading");
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-rv-expand]");
    if (!button) return;
    const open = button.dataset.rvExpand === "all";
    const all = Array.from(document.querySelectorAll("details.rv-res"));
    const list = document.getElementById("resource-list");
    const batchUrl = list && list.dataset.batchUrl;
    if (open && batchUrl && window.htmx) {
      const ids = all.filter(unloaded).map((d) => {
        d.dataset.rvBatched = "1";
        return d.id.replace(/^res-/, "");
      });
      for (let i = 0; i < ids.length; i += BATCH) {
        const url = batchUrl + "?ids=" + ids.slice(i, i + BATCH).join(",");
        window.htmx.ajax("GET", url, { source: list, swap: "none" });
      }
    }
    all.forEach((d) => { d.open = open; });
  });

  // A resource whose diff comes with a batch does not load it again on its own.
  document.addEventListener("htmx:beforeRequest", (e) => {
    const elt = e.detail.elt;
    if (elt && elt.matches && elt.matches("details.rv-res[data-rv-batched]")) {
      e.preventDefault();
    }
  });
})();
