// Prospect list: collect the ticked rows into the bulk form's hidden id field, and show only the
// input the chosen action needs (list, tag, user or group).
(() => {
  const form = document.getElementById("bulk-form");
  if (!form) return;
  const ids = document.getElementById("bulk-ids");
  const action = form.querySelector("select[name=action]");
  const needs = {
    add_to_list: "prospect_list",
    remove_from_list: "prospect_list",
    add_tag: "tag",
    remove_tag: "tag",
    assign_user: "user",
    assign_group: "group",
  };
  const params = ["prospect_list", "tag", "user", "group"]
    .map((name) => form.querySelector(`[name=${name}]`))
    .filter(Boolean);
  const rows = () => Array.from(form.querySelectorAll("input.row-select"));
  const sync = () => {
    ids.value = rows().filter((box) => box.checked).map((box) => box.value).join(",");
  };
  const showParam = () => {
    const wanted = action ? needs[action.value] : undefined;
    params.forEach((input) => { input.hidden = input.name !== wanted; });
  };
  form.addEventListener("change", (event) => {
    if (event.target.id === "select-page") {
      rows().forEach((box) => { box.checked = event.target.checked; });
    }
    if (event.target === action) showParam();
    sync();
  });
  form.addEventListener("submit", sync);
  showParam();
})();
