// 電子証明書更新前処理中 moves on by itself after the seconds its page names; its link does the same at once.
// A file, not inline, so that the Content-Security-Policy allows no inline script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const proceed = document.querySelector("[data-proceed-after]");
  if (proceed) {
    window.setTimeout(() => window.location.assign(proceed.href), Number(proceed.dataset.proceedAfter) * 1000);
  }
});
