// Kyu console: live refresh of the region marked data-refresh, and "select all" on the dead
// letter. Pages work without it; it only saves a reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (live && live.dataset.refresh) {
    var every = Math.max(1, parseFloat(live.dataset.refresh)) * 1000;
    var tick = function () {
      if (document.hidden) { return; }
      var url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null) {
            live.innerHTML = html;
            live.dataset.refreshedAt = new Date().toISOString();
          }
        })
        .catch(function () { /* the next tick tries again */ });
    };
    window.setInterval(tick, every);
  }
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('#dead input[name="ids"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
})();
