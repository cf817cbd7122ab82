/* mapp form embed: inserts the form in an iframe and fits its height to the form. */
(function () {
  "use strict";
  var config = {{ config|safe }};
  var script = document.currentScript;
  var holder = document.querySelector('[data-mapp-form="' + config.form + '"]:not([data-mapp-ready])');
  var frame = document.createElement("iframe");
  frame.src = config.src;
  frame.title = config.title;
  frame.setAttribute("scrolling", "no");
  frame.style.cssText = "border:0;width:100%;max-width:100%;height:480px;overflow:hidden";
  if (holder) {
    holder.setAttribute("data-mapp-ready", "1");
    holder.appendChild(frame);
  } else if (script && script.parentNode) {
    script.parentNode.insertBefore(frame, script.nextSibling);
  } else {
    document.body.appendChild(frame);
  }
  window.addEventListener("message", function (event) {
    if (event.origin !== config.origin || event.source !== frame.contentWindow) {
      return;
    }
    var data = event.data;
    if (!data || typeof data !== "object" || data.form !== config.form) {
      return;
    }
    if (data.type === "mapp:form:height" && typeof data.height === "number" && data.height > 0 && data.height < 20000) {
      frame.style.height = Math.ceil(data.height) + "px";
    } else if (data.type === "mapp:form:redirect" && typeof data.url === "string" && /^https?:\/\//i.test(data.url)) {
      window.location.href = data.url;
    }
  });
})();
