// Prospect list: collect the ticked rows into the bulk form's hidden id field.
(() => {
  const form = document.getElementById("bulk-form");
  if (!form) return;
  const ids = document.getElementById("bulk-ids");
  const rows = () => Array.from(form.querySelectorAll("input.row-select"));
  const sync = () => {
    ids.value = rows().filter((box) => box.checked).map((box) => box.value).join(",");
  };
  form.addEventListener("change", (event) => {
    if (event.target.id === "select-page") {
      rows().forEach((box) => { box.checked = event.target.checked; });
    }
    sync();
  });
  form.addEventListener("submit", sync);
})();
