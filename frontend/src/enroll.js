// The enrollment pages of certportal: 電子証明書更新開始 / 電子証明書取得 and 発行完了.
//
// 更新 (or 取得) → 「Web アクセスの確認」 はい: create the key and send the CSR →
// 「Web アクセスの確認」 はい: save certificate + key as a password-protected .p12 →
// the 発行完了 page. The private key exists only in this page's memory and in that file.
import { buildCsr, buildPkcs12, generateKeyPair } from "./pki.js";

// Printable ASCII without spaces: every importer (Windows, macOS, NSS, OpenSSL) turns such a
// password into the same bytes, which is not true of every non-ASCII character.
const PASSWORD_PATTERN = /^[\x21-\x7e]{8,128}$/;

function ask(dialog) {
  return new Promise((resolve) => {
    const answer = (value) => {
      dialog.removeEventListener("cancel", onCancel);
      for (const button of buttons) button.removeEventListener("click", onClick);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onClick = (event) => answer(event.currentTarget.dataset.answer === "yes");
    const onCancel = (event) => {
      event.preventDefault();
      answer(false);
    };
    const buttons = dialog.querySelectorAll("button[data-answer]");
    for (const button of buttons) button.addEventListener("click", onClick);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
  });
}

function download(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/x-pkcs12" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function setUpEnrollment(form) {
  const text = form.dataset;
  const button = document.getElementById("enroll-start");
  const status = document.getElementById("enroll-status");
  const error = document.getElementById("enroll-error");
  const password = document.getElementById("p12-password");
  const again = document.getElementById("p12-password-again");
  // Kept while the page is open, so that a cancelled second confirmation can be answered
  // again without issuing a second certificate.
  const state = { keys: null, issued: null };

  const say = (message) => {
    status.textContent = message;
  };
  const fail = (message) => {
    say("");
    error.textContent = message;
    error.hidden = false;
  };

  if (!window.isSecureContext || !globalThis.crypto || !globalThis.crypto.subtle) {
    fail(text.msgUnsupported);
    button.disabled = true;
    return;
  }
  form.addEventListener("submit", (event) => event.preventDefault());

  async function enroll() {
    error.hidden = true;
    if (!PASSWORD_PATTERN.test(password.value)) return fail(text.msgPasswordRules);
    if (password.value !== again.value) return fail(text.msgPasswordMismatch);
    if (!state.issued) {
      if (!(await ask(document.getElementById("confirm-key")))) return fail(text.msgCancelled);
      say(text.msgCreatingKey);
      state.keys = await generateKeyPair();
      const csr = await buildCsr(state.keys, text.commonName);
      say(text.msgRequesting);
      const response = await fetch(text.issueUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value,
        },
        body: JSON.stringify({ csr }),
        // A redirect here is to the login screen: the session ended (idle timeout, logout).
        redirect: "manual",
      });
      if (response.type === "opaqueredirect") {
        state.keys = null;
        return fail(text.msgSessionEnded);
      }
      const body = await response.json().catch(() => ({}));
      if (!response.ok || !body.certificate) {
        state.keys = null;
        return fail(body.error || text.msgFailed);
      }
      state.issued = body;
    }
    if (!(await ask(document.getElementById("confirm-install")))) return fail(text.msgInstallCancelled);
    say(text.msgSaving);
    const p12 = await buildPkcs12({
      privateKey: state.keys.privateKey,
      certificatePem: state.issued.certificate,
      password: password.value,
      friendlyName: state.issued.friendly_name,
    });
    download(p12, state.issued.filename);
    say(text.msgSaved);
    // Give the browser a moment to take the download before the page (and the key) goes.
    setTimeout(() => window.location.assign(state.issued.next), 1000);
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await enroll();
    } catch (exception) {
      console.error(exception);
      fail(text.msgFailed);
    } finally {
      button.disabled = false;
    }
  });
}

function setUpCloseWindow(button) {
  button.addEventListener("click", () => {
    window.close();
    // Browsers let a script close only windows that a script opened.
    setTimeout(() => {
      document.getElementById("close-window-hint").hidden = false;
    }, 300);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("enroll-form");
  if (form) setUpEnrollment(form);
  const close = document.getElementById("close-window");
  if (close) setUpCloseWindow(close);
});
