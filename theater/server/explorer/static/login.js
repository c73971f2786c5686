// The login page: posts the token as JSON (never a form: the server takes JSON writes only) and, once the server
// has set the session cookie, goes to the explorer.
"use strict";

document.getElementById("login-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const token = document.getElementById("token").value;
  try {
    const reply = await fetch("/v1/explorer/login", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token}),
    });
    if (reply.ok) {
      window.location.assign("/");
      return;
    }
    const body = await reply.json().catch(() => ({}));
    error.textContent = `${body.error || reply.status}: ${body.message || reply.statusText}`;
  } catch (failure) {
    error.textContent = `the server did not answer: ${failure}`;
  }
});
