// Login: OAuth2 password form posted by script; the token goes to sessionStorage only.

import { login } from "../api.js";
import { h, replace } from "../dom.js";

export function renderLogin(root, onDone) {
  const error = h("p", { class: "error-text", role: "alert", id: "login-error" });
  const form = h(
    "form",
    { class: "login", method: "post", action: "/", autocomplete: "on" },
    h("h1", {}, "Infusion management"),
    h("label", { for: "username" }, "User name"),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" }),
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Log in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    error.textContent = "";
    try {
      await login(form.elements.username.value.trim(), form.elements.password.value);
      form.reset();
      onDone();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  replace(root, form);
  form.elements.username.focus();
}
