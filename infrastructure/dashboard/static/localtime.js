// Times in the reader's own zone: every <time datetime="...Z"> is rendered in UTC by the server
// (what a reader with JavaScript off sees); this rewrites its text in the browser's zone and keeps
// the UTC value in its title. Runs again after every htmx swap (counters, live rows).
(function () {
  "use strict";
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
  } catch (e) { return; }
  function localise(root) {
    var times = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < times.length; i++) {
      var t = times[i], d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) { continue; }
      t.title = t.getAttribute("datetime") + " (UTC)";
      t.textContent = fmt.format(d);
      t.setAttribute("data-local", "");
    }
  }
  window.parsecLocalise = localise;
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localise(e.target); });
})();
