// One modal dialog for confirmations and small forms. <dialog>.showModal() keeps the
// focus inside it and closes on Escape; the dialog stays open on a refusal and shows the
// service's sentence instead.

import { $ } from "./dom.js";
import { ApiError } from "./api.js";

export class Dialog {
  constructor() {
    this.node = $("#dialog");
    this.title = $("#dialog-title");
    this.body = $("#dialog-body");
    this.error = $("#dialog-error");
    this.confirm = $("#dialog-confirm");
    this.cancel = $("#dialog-cancel");
    this.form = $("#dialog-form");
    this.action = null;
    this.cancel.addEventListener("click", () => this.node.close("cancel"));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  /**
   * Opens the dialog; `action` runs on confirm and closes it when it resolves. Focus
   * goes to `focus` (an element of `body`), else to Cancel for a dangerous action.
   */
  open({ title, body, confirm, danger = false, action, focus }) {
    this.title.textContent = title;
    this.body.replaceChildren(...body);
    this.error.textContent = "";
    this.confirm.textContent = confirm;
    this.confirm.classList.toggle("danger", danger);
    this.confirm.classList.toggle("primary", !danger);
    this.confirm.disabled = false;
    this.action = action;
    const opener = document.activeElement;
    this.node.addEventListener("close", () => {
      if (opener?.isConnected) opener.focus();
    }, { once: true });
    this.node.showModal();
    (focus || (danger ? this.cancel : this.confirm)).focus();
  }

  async run() {
    this.confirm.disabled = true;
    this.error.textContent = "";
    try {
      await this.action();
      this.node.close("done");
    } catch (error) {
      this.error.textContent = error instanceof ApiError ? error.detail : `Failed: ${error?.message || error}`;
    } finally {
      this.confirm.disabled = false;
    }
  }
}
