// The console's only script: the image veil and keyboard shortcuts. Pages work without it
// (every action is a plain form or link); it only makes them faster and kinder to use.
(function () {
  "use strict";

  // Every image of the page veils and reveals together. Revealing an image of a review job
  // ticks "viewed" on its confirm form, since the report must say whether anyone looked.
  function toggleVeil() {
    var images = document.querySelectorAll("img[data-veil]");
    var button = document.getElementById("reveal");
    if (!images.length) {
      return;
    }
    var veiled = !images[0].classList.contains("veiled");
    for (var i = 0; i < images.length; i++) {
      images[i].classList.toggle("veiled", veiled);
    }
    if (button) {
      button.setAttribute("aria-pressed", veiled ? "false" : "true");
      button.querySelector(".reveal-label").textContent = veiled ? "Reveal" : "Veil again";
    }
    var viewed = document.getElementById("viewed");
    if (viewed && !veiled) {
      viewed.checked = true;
    }
  }

  function typingIn(target) {
    if (!target || !target.tagName) {
      return false;
    }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // Shift+1..7 choose the age band by its position in the list (Shift+0 clears it).
  function chooseAgeBand(digit) {
    var select = document.getElementById("age-band");
    if (!select || digit >= select.options.length) {
      return false;
    }
    select.selectedIndex = digit;
    var status = document.getElementById("age-band-status");
    if (status) {
      status.textContent = "Age band: " + select.options[digit].text;
    }
    return true;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    if (event.key === "Escape" && typingIn(event.target)) {
      event.target.blur();
      return;
    }
    if (typingIn(event.target)) {
      return;
    }
    var digit = /^Digit([0-9])$/.exec(event.code || "");
    if (event.shiftKey && digit) {
      if (chooseAgeBand(parseInt(digit[1], 10))) {
        event.preventDefault();
      }
      return;
    }
    if (event.shiftKey) {
      return;
    }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var targets = document.querySelectorAll("[data-shortcut]");
    for (var i = 0; i < targets.length; i++) {
      var keys = targets[i].getAttribute("data-shortcut").split(" ");
      if (keys.indexOf(key) !== -1 && !targets[i].disabled) {
        event.preventDefault();
        targets[i].click();
        return;
      }
    }
  }

  function onSubmit(event) {
    // One decision per item: a second key press while the first is on its way does nothing.
    var form = event.target;
    if (form.getAttribute("data-once") === null) {
      return;
    }
    if (form.getAttribute("data-sent") === "yes") {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-sent", "yes");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("reveal");
    if (button) {
      button.addEventListener("click", toggleVeil);
    }
    document.addEventListener("keydown", onKey);
    document.addEventListener("submit", onSubmit);
  });
})();
