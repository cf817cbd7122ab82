/* Settings → Tracking: the copy button of the tracking snippet. */
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source || !navigator.clipboard) return;
      var label = button.textContent;
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = button.getAttribute("data-copied-label") || label;
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });
})();
