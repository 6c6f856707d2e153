/* Progressive enhancement only: the pages work without it. An error summary takes focus when the
   page loads, and its links move focus to the field they name (not only scroll to it). */
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (!summary) { return; }
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) { return; }
    event.preventDefault();
    field.focus();
    field.scrollIntoView({block: "center"});
  });
})();

/* The referral form's live preview: when a field changes, the page is asked what the form as it
   stands would share and what it would hold, and the answer replaces the live region (read out
   politely). Without JavaScript the preview button shows the same. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-live-preview]");
  var region = document.getElementById("preview-region");
  if (!form || !region || !window.fetch) { return; }
  var timer = null, asked = 0;
  function refresh() {
    var mine = ++asked;
    fetch(form.getAttribute("data-live-preview"), {method: "POST", body: new FormData(form), credentials: "same-origin"})
      .then(function (response) { return response.status === 200 ? response.text() : ""; })
      .then(function (html) {
        if (mine === asked) { region.innerHTML = html; }   // a later change's answer wins
      })
      .catch(function () { /* the button still previews */ });
  }
  form.addEventListener("change", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
