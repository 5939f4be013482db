// "Pull into…": tick every integration that can take a pull, or none.
document.addEventListener("click", (e) => {
  const button = e.target.closest("[data-pb-select]");
  if (!button) return;
  const on = button.dataset.pbSelect === "all";
  document.querySelectorAll('.pb-list input[name="targets"]:not(:disabled)').forEach((box) => {
    box.checked = on;
  });
});
