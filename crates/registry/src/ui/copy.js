// Copy buttons for pull references: shown only when this script runs; the reference
// itself stays selectable text without it.
(function () {
  var status = document.getElementById("copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (b) { b.hidden = false; });
  function said(b, ok) {
    b.textContent = ok ? "Copied" : "Select and copy";
    if (status) status.textContent = ok ? "Copied " + b.getAttribute("data-copy") : "Copying failed";
    setTimeout(function () { b.textContent = "Copy"; }, 1500);
  }
  function fallback(b, text) {
    var t = document.createElement("textarea");
    t.value = text;
    t.setAttribute("readonly", "");
    t.style.position = "fixed";
    t.style.opacity = "0";
    document.body.appendChild(t);
    t.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(t);
    said(b, ok);
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button[data-copy]");
    if (!b) return;
    var text = b.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { said(b, true); }, function () { fallback(b, text); });
    } else {
      fallback(b, text);
    }
  });
})();
