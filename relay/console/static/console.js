// lienthong console: the document page refreshes its recipients' rows by itself.
// It asks /live/documents/{id}?v=VERSION every few seconds while the tab is visible; the
// console answers 204 when nothing changed, so an open page costs one small query per poll.
(function () {
  "use strict";
  var INTERVAL_MS = 3000;
  var MAX_INTERVAL_MS = 60000;

  function start(box) {
    var url = box.getAttribute("data-live");
    var delay = INTERVAL_MS;
    var timer = null;

    function schedule() {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(poll, delay);
    }

    function poll() {
      timer = null;
      if (document.visibilityState === "hidden") { return; }  // resumed on visibilitychange
      var version = box.getAttribute("data-version") || "";
      fetch(url + "?v=" + encodeURIComponent(version), {
        credentials: "same-origin",
        headers: { "Accept": "application/json" },
        cache: "no-store"
      }).then(function (resp) {
        if (resp.status === 200) {
          return resp.json().then(function (data) {
            box.innerHTML = data.html;
            box.setAttribute("data-version", data.version);
            box.setAttribute("data-updated", String(Date.now()));
            delay = INTERVAL_MS;
          });
        }
        if (resp.status === 204) { delay = INTERVAL_MS; return; }
        // Signed out, gone, or a server error: back off instead of hammering the console.
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      }).catch(function () {
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      }).then(schedule);
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !timer) { poll(); }
    });
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-live]");
    for (var i = 0; i < boxes.length; i++) { start(boxes[i]); }
  });
})();
