/* mapp tracking script, served at /t/mapp.js. No dependencies, ES2017.
 * Commands: mapp('consent') / mapp('consent', false), mapp('identify', signedToken),
 * mapp('pageview') after a single-page route change. Consent lasts for the page.
 * Protocol and snippet: tracking/views_tracking.py.
 */
(function () {
  "use strict";
  var w = window;
  var d = document;
  if (w.__mappLoaded) return;
  w.__mappLoaded = true;

  var me = d.currentScript || d.querySelector("script[data-mapp-tracker]");
  var base = "";
  if (me) {
    base = me.getAttribute("data-mapp-tracker") || "";
    if (!base && me.src) base = new URL(me.src).origin;
  }
  base = base.replace(/\/+$/, "");
  if (!base) return;

  var config = null;
  var consent = false;
  var pageViewPending = true;
  var lastUrl = d.referrer;
  var waiting = [];
  var outbox = [];
  var sending = false;

  function doNotTrack() {
    return navigator.doNotTrack === "1" || w.doNotTrack === "1";
  }

  function allowed() {
    if (!config) return false;
    if (config.honour_do_not_track && doNotTrack()) return false;
    return !config.require_consent || consent;
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    if (w.crypto && w.crypto.getRandomValues) {
      w.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // One at a time, so the cookie set by one beacon goes with the next.
  function next() {
    if (sending || !outbox.length) return;
    sending = true;
    var image = new Image();
    var finished = false;
    var done = function () {
      if (finished) return;
      finished = true;
      sending = false;
      next();
    };
    image.onload = done;
    image.onerror = done; // a 204 is an "error" for an image
    setTimeout(done, 5000);
    image.src = outbox.shift();
  }

  function send(path, params) {
    if (consent) params.consent = "1";
    if (doNotTrack()) params.dnt = "1";
    var q = function () { return new URLSearchParams(params).toString(); };
    // Request lines over 4 KB are refused (encoded Japanese is long): drop the
    // referrer, then shorten the title.
    if (q().length > 3500) params.ref = "";
    if (q().length > 3500) params.title = String(params.title || "").slice(0, 80);
    outbox.push(base + path + "?" + q());
    next();
  }

  function pageView() {
    if (!allowed()) {
      pageViewPending = true;
      return;
    }
    pageViewPending = false;
    var url = String(location.href).slice(0, 2000);
    send("/t/pv", {
      url: url,
      title: String(d.title || "").slice(0, 500),
      ref: String(lastUrl || "").slice(0, 2000),
      pvid: randomId()
    });
    lastUrl = url;
  }

  function run(args) {
    var name = args[0];
    if (name === "consent") {
      consent = args[1] !== false;
      if (consent && pageViewPending) pageView();
    } else if (name === "identify") {
      if (allowed() && typeof args[1] === "string" && args[1]) send("/t/identify", { token: args[1] });
    } else if (name === "pageview") {
      pageView();
    }
  }

  function handle(args) {
    if (config) run(args);
    else waiting.push(args);
  }

  function start(settings) {
    config = {
      require_consent: !!settings.require_consent,
      honour_do_not_track: !!settings.honour_do_not_track
    };
    pageView();
    waiting.splice(0).forEach(run);
  }

  var queued = w.mappq && typeof w.mappq.length === "number" ? Array.from(w.mappq) : [];
  w.mappq = {
    push: function () {
      for (var i = 0; i < arguments.length; i++) handle(arguments[i]);
    }
  };
  queued.forEach(handle);

  fetch(base + "/t/config.json", { credentials: "omit" })
    .then(function (response) { return response.ok ? response.json() : Promise.reject(); })
    // Settings unknown: assume the strictest.
    .then(start, function () { start({ require_consent: true, honour_do_not_track: true }); });
})();
