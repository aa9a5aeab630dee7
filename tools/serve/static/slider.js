// The version slider: show the number while it moves, load that version when it is let go.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const range of document.querySelectorAll("input[type=range][data-autosubmit]")) {
    const out = document.getElementById(range.id + "-out");
    range.addEventListener("input", () => { if (out) out.value = range.value; });
    range.addEventListener("change", () => range.form.submit());
  }
});
