/* mapp public form page: inside an iframe, tell the embedding page (embed.js) the page's
   height, and where to go after a submission that redirects. Nothing happens outside a frame. */
(function () {
  "use strict";
  if (window.parent === window) {
    return;
  }
  var form = document.documentElement.getAttribute("data-mapp-form") || "";
  function post(message) {
    message.form = form;
    // Heights and an allow-listed thank-you URL are not secrets: any embedding page may read them.
    window.parent.postMessage(message, "*");
  }
  function sendHeight() {
    post({ type: "mapp:form:height", height: Math.ceil(document.documentElement.scrollHeight) });
  }
  sendHeight();
  window.addEventListener("load", sendHeight);
  if ("ResizeObserver" in window) {
    new ResizeObserver(sendHeight).observe(document.body);
  } else {
    window.addEventListener("resize", sendHeight);
  }
  var redirect = document.querySelector("[data-mapp-redirect]");
  if (redirect) {
    post({ type: "mapp:form:redirect", url: redirect.getAttribute("href") });
  }
})();
