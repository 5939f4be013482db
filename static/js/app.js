// Small behaviours that htmx does not cover. No framework, no CDN.
(function () {
  "use strict";
  // Times: show "3 minutes ago" with the exact time on hover.
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["year", 31536e6], ["month", 2592e6], ["week", 6048e5], ["day", 864e5],
    ["hour", 36e5], ["minute", 6e4], ["second", 1e3]];
  function relative(el) {
    const t = new Date(el.getAttribute("datetime"));
    if (isNaN(t)) return;
    const diff = t - Date.now();
    for (const [unit, ms] of units) {
      if (Math.abs(diff) >= ms || unit === "second") {
        el.textContent = rtf.format(Math.round(diff / ms), unit);
        break;
      }
    }
    if (!el.title) el.title = t.toLocaleString();
  }
  function refreshTimes(root) {
    (root || document).querySelectorAll("time.relative[datetime]").forEach(relative);
  }
  document.addEventListener("DOMContentLoaded", () => refreshTimes());
  document.addEventListener("htmx:afterSwap", (e) => refreshTimes(e.target));
  setInterval(() => refreshTimes(), 60000);

  // Toasts from HX-Trigger: {"ilm:toast": "Saved"}.
  document.addEventListener("ilm:toast", (e) => {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = e.detail.value || e.detail;
    el.classList.add("show");
    clearTimeout(el._t);
    el._t = setTimeout(() => el.classList.remove("show"), 3500);
  });

  // Confirm dialogs for destructive buttons without htmx: data-confirm="Delete this flow?".
  document.addEventListener("submit", (e) => {
    const msg = e.submitter && e.submitter.dataset.confirm || e.target.dataset.confirm;
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
})();
