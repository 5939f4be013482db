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

  // An htmx request that fails (refused, gone, server error, offline) says so instead of
  // leaving the page as it was without a word.
  function toast(text) {
    document.dispatchEvent(new CustomEvent("ilm:toast", { detail: { value: text } }));
  }
  document.addEventListener("htmx:responseError", (e) => {
    const status = e.detail.xhr ? e.detail.xhr.status : 0;
    const why = { 403: "You may not do that.", 404: "That page is gone (or not yours to see).",
      409: e.detail.xhr.responseText }[status] || `The server answered ${status}; try again.`;
    toast(why);
  });
  document.addEventListener("htmx:sendError", () => toast("No connection to the server; try again."));

  // Tab bars: arrow keys move between tabs (the WAI-ARIA tabs pattern).
  document.addEventListener("keydown", (e) => {
    const tab = e.target.closest && e.target.closest('[role="tab"]');
    if (!tab || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
    const tabs = Array.from(tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
    let i = tabs.indexOf(tab);
    i = e.key === "Home" ? 0 : e.key === "End" ? tabs.length - 1
      : (i + (e.key === "ArrowRight" ? 1 : -1) + tabs.length) % tabs.length;
    tabs[i].focus();
    e.preventDefault();
  });

  // A clicked tab is the selected one at once; the response confirms it. With hx-sync on the
  // tab bar a newer click replaces a request still in flight, so the last click wins.
  document.addEventListener("click", (e) => {
    const tab = e.target.closest && e.target.closest('[role="tab"]');
    if (!tab || e.ctrlKey || e.metaKey || e.shiftKey) return;
    tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]').forEach((t) => {
      t.setAttribute("aria-selected", t === tab ? "true" : "false");
    });
  });

  // Search boxes that filter as you type (data-typed-filter) already asked on input; their
  // change event (on leaving the box) would ask again and replace what was opened since.
  document.addEventListener(
    "change",
    (e) => {
      if (e.target.matches && e.target.matches("[data-typed-filter]")) e.stopPropagation();
    },
    true,
  );

  // "Go back" links (data-back): the previous page when there is one, else their href.
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a[data-back]");
    if (link && window.history.length > 1) {
      e.preventDefault();
      window.history.back();
    }
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

  // A form that comes back with errors: bring the first message into view.
  document.addEventListener("DOMContentLoaded", () => {
    const alert = document.querySelector("main [role=alert]");
    if (!alert) return;
    const box = alert.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) alert.scrollIntoView({ block: "center" });
  });
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
