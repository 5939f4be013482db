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
  document.addEventListener("htmx:historyRestore", () => refreshTimes());
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

  // Narrow screens: keep the selected tab of a scrolling tab bar in view.
  function showSelectedTab() {
    document.querySelectorAll(".tabs").forEach((bar) => {
      const tab = bar.querySelector('[aria-selected="true"]');
      if (tab && bar.scrollWidth > bar.clientWidth) {
        bar.scrollLeft = Math.max(0, tab.offsetLeft - bar.offsetLeft - 24);
      }
    });
  }
  document.addEventListener("DOMContentLoaded", showSelectedTab);
  document.addEventListener("htmx:afterSettle", showSelectedTab);

  // Django formsets: a button data-formset-add="prefix" appends a row cloned from
  // <template data-formset-template="prefix"> into [data-formset="prefix"] and counts it.
  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-formset-add]");
    if (!button) return;
    const prefix = button.dataset.formsetAdd;
    const form = button.closest("form");
    const total = form && form.querySelector(`input[name="${prefix}-TOTAL_FORMS"]`);
    const tpl = form && form.querySelector(`template[data-formset-template="${prefix}"]`);
    const body = form && form.querySelector(`[data-formset="${prefix}"] tbody`);
    if (!total || !tpl || !body) return;
    const index = parseInt(total.value, 10) || 0;
    const holder = document.createElement("tbody");
    holder.innerHTML = tpl.innerHTML.replace(/__prefix__/g, String(index));
    const row = holder.firstElementChild;
    body.appendChild(row);
    total.value = String(index + 1);
    const first = row.querySelector("input:not([type=hidden]):not([type=checkbox]), select");
    if (first) first.focus();
  });
})();
