// The enrollment pages of certportal: 電子証明書更新開始 / 電子証明書取得 and 発行完了.
//
// 更新 (or 取得) → 「Web アクセスの確認」 はい: create the key and send the CSR →
// 「Web アクセスの確認」 はい: save certificate + chain + key as a password-protected .p12 (the
// modern form) → the 発行完了 screen, shown in this same page so that it can still make the
// compatibility form for older devices. The private key exists only in this page's memory and
// in those files; a reload or a later visit of 発行完了 shows the screen without the key.
import { buildCsr, fromPem, generateKeyPair } from "./pki.js";
import { COMPATIBILITY, MODERN, checkPkcs12, makePkcs12 } from "./pkcs12.js";

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

function pemBlocks(pem) {
  return pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) || [];
}

// Saves the PKCS#12 file in `profile`'s form: the issued certificate, its chain, this page's key.
async function savePkcs12(state, profile, filename) {
  const bytes = await makePkcs12({
    profile,
    privateKeyPkcs8: await crypto.subtle.exportKey("pkcs8", state.keys.privateKey),
    certificateDer: fromPem(state.issued.certificate),
    chainDer: pemBlocks(state.issued.chain).map(fromPem),
    password: state.password,
    friendlyName: state.issued.friendly_name,
  });
  download(bytes, filename);
}

// 発行完了 replaces this page's content (same URL as a reload would show), keeping the key.
// Should that fail, the browser simply opens 発行完了 (the file is saved already).
async function showIssued(state) {
  let issued;
  try {
    const response = await fetch(state.issued.next, { credentials: "same-origin", redirect: "manual" });
    if (!response.ok) throw new Error(`発行完了: HTTP ${response.status}`);
    issued = new DOMParser().parseFromString(await response.text(), "text/html");
  } catch (exception) {
    console.error(exception);
    // A moment for the browser to take the download before the page (and the key) goes.
    setTimeout(() => window.location.assign(state.issued.next), 1000);
    return;
  }
  document.querySelector("main").replaceWith(document.adoptNode(issued.querySelector("main")));
  document.title = issued.title;
  window.history.replaceState(null, "", state.issued.next);
  setUpIssued(state);
  const heading = document.querySelector("main h1");
  heading.tabIndex = -1;
  heading.focus();
}

function setUpCompatibilityFile(offer, state) {
  const button = document.getElementById("save-compatibility");
  const status = document.getElementById("compatibility-status");
  offer.hidden = false;
  document.getElementById("compatibility-unavailable").hidden = true;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await savePkcs12(state, COMPATIBILITY, state.issued.compatibility_filename);
      status.textContent = offer.dataset.msgSaved;
    } catch (exception) {
      console.error(exception);
      status.textContent = offer.dataset.msgFailed;
    } finally {
      button.disabled = false;
    }
  });
}

// 「保存したファイルの確認」: opens the chosen file with the typed password, in this page only.
function setUpFileCheck(section) {
  const text = section.dataset;
  const file = document.getElementById("check-file");
  const password = document.getElementById("check-password");
  const result = document.getElementById("check-result");
  const messages = {
    opens: text.msgOpens,
    "wrong-password": text.msgWrongPassword,
    "not-pkcs12": text.msgNotPkcs12,
  };
  document.getElementById("check-start").addEventListener("click", async () => {
    result.textContent = "";
    result.dataset.outcome = "";
    if (!file.files.length) {
      result.textContent = text.msgChooseFile;
      return;
    }
    const outcome = checkPkcs12(new Uint8Array(await file.files[0].arrayBuffer()), password.value);
    result.dataset.outcome = outcome;
    result.textContent = messages[outcome];
  });
}

function setUpIssued(state) {
  const offer = document.getElementById("compatibility-offer");
  if (offer && state) setUpCompatibilityFile(offer, state);
  const check = document.getElementById("file-check");
  if (check) setUpFileCheck(check);
  const close = document.getElementById("close-window");
  if (close) setUpCloseWindow(close);
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
  const state = { keys: null, issued: null, password: null };

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
    state.password = password.value;
    await savePkcs12(state, MODERN, state.issued.filename);
    say(text.msgSaved);
    await showIssued(state);
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
  else setUpIssued(null);
});
