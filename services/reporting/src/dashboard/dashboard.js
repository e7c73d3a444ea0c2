// The dashboard's only script: follows the page's live updates (server-sent events) and
// completes a sign-in link, whose token travels in the URL fragment so that it never reaches
// a server log.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sign-in");
  if (form && location.hash.startsWith("#token=")) {
    document.getElementById("token").value = decodeURIComponent(location.hash.slice(7));
    history.replaceState(null, "", location.pathname + location.search);
    form.submit();
    return;
  }
  const live = document.querySelector("[data-live]");
  const status = document.getElementById("live-status");
  if (!live) {
    return;
  }
  const source = new EventSource(live.dataset.live);
  source.addEventListener("update", (event) => {
    live.innerHTML = event.data;
    if (status) {
      status.textContent = "Updated " + new Date().toLocaleTimeString("en-GB") + ".";
    }
  });
  source.addEventListener("expired", () => {
    source.close();
    if (status) {
      status.textContent = "Your sign-in has expired: reload the page to sign in again.";
    }
  });
  source.onerror = () => {
    if (status) {
      status.textContent = "Live updates interrupted; retrying.";
    }
  };
});
