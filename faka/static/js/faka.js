/* faka.js: copy buttons and countdowns. ES2017, no dependencies, CSP-safe.
 * <button type="button" data-copy="ID" data-copied="已复制"> copies #ID's trimmed
 * textContent; delegated on document, so it also works for content swapped in by htmx.
 * <time datetime="ISO" data-countdown data-expired="…"> shows the time left (m:ss)
 * instead of the deadline; without JavaScript the deadline itself stays. */
(function () {
  'use strict';

  function fallbackCopy(text, target) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.cssText = 'position:fixed;top:0;left:0;opacity:0;';
    document.body.appendChild(ta);
    ta.select();
    ta.setSelectionRange(0, text.length); // iOS
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { /* unsupported */ }
    document.body.removeChild(ta);
    if (!ok) { // leave the text selected so the user can copy it by hand
      var range = document.createRange(), sel = window.getSelection();
      range.selectNodeContents(target);
      sel.removeAllRanges();
      sel.addRange(range);
    }
    return ok;
  }

  function flash(btn) {
    var label = btn.getAttribute('data-copied');
    if (!label) return;
    if (!btn.hasAttribute('data-copy-label')) btn.setAttribute('data-copy-label', btn.textContent);
    btn.textContent = label;
    clearTimeout(btn._fakaTimer);
    btn._fakaTimer = setTimeout(function () {
      btn.textContent = btn.getAttribute('data-copy-label');
      btn.removeAttribute('data-copy-label');
    }, 1500);
  }

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest ? ev.target.closest('[data-copy]') : null;
    var target = btn && document.getElementById(btn.getAttribute('data-copy'));
    if (!target) return;
    ev.preventDefault();
    var text = target.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { flash(btn); }, function () {
        if (fallbackCopy(text, target)) flash(btn);
      });
    } else if (fallbackCopy(text, target)) {
      flash(btn);
    }
  });
})();

(function () {
  'use strict';

  function tick() {
    var nodes = document.querySelectorAll('time[data-countdown]');
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i], left = Math.floor((Date.parse(node.getAttribute('datetime')) - Date.now()) / 1000);
      if (isNaN(left)) continue;
      if (left <= 0) {
        node.textContent = node.getAttribute('data-expired') || '0:00';
      } else {
        var seconds = left % 60;
        node.textContent = Math.floor(left / 60) + ':' + (seconds < 10 ? '0' : '') + seconds;
      }
    }
  }

  // Always ticking (a query per second is nothing): pages arrive by htmx boosts too.
  tick();
  setInterval(tick, 1000);
})();
