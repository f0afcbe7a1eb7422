// Sluice console: small progressive enhancements. Every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: copy the text of the element named by data-copy.
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) return;
      var text = el.value !== undefined ? el.value : el.textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        if (el.select) { el.select(); }
        done();
      }
    });
  });
  // Type-the-name confirmation: the submit button stays disabled until the name matches.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    var expected = f.getAttribute("data-confirm");
    var input = f.querySelector("input[name=confirm]");
    var button = f.querySelector("button[type=submit]");
    if (!input || !button) return;
    var sync = function () { button.disabled = input.value !== expected; };
    input.addEventListener("input", sync);
    sync();
  });
  // The warehouse form shows only the fields of the chosen storage type.
  var type = document.getElementById("f-storage-type");
  if (type) {
    var sync = function () {
      document.querySelectorAll("fieldset[data-storage]").forEach(function (fs) {
        var on = fs.getAttribute("data-storage") === type.value;
        fs.hidden = !on;
        fs.disabled = !on;
      });
    };
    type.addEventListener("change", sync);
    sync();
  }
});
