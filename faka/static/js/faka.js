/* faka.js: copy buttons and countdowns. ES2017, no dependencies, CSP-safe.
 * <button type="button" data-copy="ID" data-copied="已复制"> copies #ID's trimmed
 * textContent; delegated on document, so it also works for content swapped in by htmx.
 * <time datetime="ISO" data-countdown data-expired="…"> shows the time left (m:ss)
 * instead of the deadline; without JavaScript the deadline itself stays. */
document.documentElement.classList.add('js'); // shows what only works with scripts (.js-only)

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

/* Leaving for the payment provider. The pay page's link with data-leave-now is followed
 * at once (the page is on a phone, and the provider is the only way on), unless the
 * buyer came back to the pay page with the back button: then it stays, with its link,
 * its countdown and the other ways to pay. A script navigation, unlike a form's
 * redirect, is not limited by the CSP's form-action. */
(function () {
  'use strict';

  function cameBack() {
    var nav = window.performance && performance.getEntriesByType ? performance.getEntriesByType('navigation')[0] : null;
    return !!nav && nav.type === 'back_forward';
  }

  var leaving = false;

  function leaveNow(root) {
    var link = root.querySelector ? root.querySelector('a[data-leave-now]') : null;
    if (link && !leaving && !cameBack()) {
      leaving = true;
      window.location.assign(link.href);
    }
  }

  leaveNow(document);
  document.addEventListener('htmx:load', function (ev) { leaveNow(ev.target); });
})();

/* WeChat Pay inside WeChat (JSAPI): <button data-wechat-pay='{…getBrandWCPayRequest…}'
 * data-paid-url="…"> opens WeChat's payment sheet, at once and on each tap. */
(function () {
  'use strict';

  var button = document.querySelector('[data-wechat-pay]');
  if (!button) return;
  var failed = document.querySelector('[data-wechat-failed]');

  function pay() {
    if (typeof window.WeixinJSBridge === 'undefined') return;
    window.WeixinJSBridge.invoke('getBrandWCPayRequest', JSON.parse(button.getAttribute('data-wechat-pay')), function (res) {
      if (res && res.err_msg === 'get_brand_wcpay_request:ok') {
        window.location.assign(button.getAttribute('data-paid-url'));
      } else if (failed) {
        failed.hidden = false;
      }
    });
  }

  button.addEventListener('click', pay);
  if (typeof window.WeixinJSBridge === 'undefined') {
    document.addEventListener('WeixinJSBridgeReady', pay, false);
  } else {
    pay();
  }
})();

/* Every form disables its submit button while htmx sends it, so a second tap sends
 * nothing (htmx's hx-disabled-elt, given to each form as it appears; a form may set its
 * own). The button shows a spinner meanwhile (faka.css: .htmx-request). */
(function () {
  'use strict';

  function disableWhileSending(root) {
    var forms = root.querySelectorAll ? root.querySelectorAll('form:not([hx-disabled-elt])') : [];
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      if (!form.querySelector('button[type=submit]')) continue;
      form.setAttribute('hx-disabled-elt', 'find button[type=submit]');
      // Fields that send requests of their own (the price preview) must not inherit it.
      var kept = form.getAttribute('hx-disinherit');
      if (kept !== '*') form.setAttribute('hx-disinherit', ((kept || '') + ' hx-disabled-elt').trim());
    }
  }

  disableWhileSending(document);
  document.addEventListener('htmx:load', function (ev) { disableWhileSending(ev.target); });
})();

/* When an htmx request the visitor made cannot reach the server (no network, a timeout),
 * say so instead of doing nothing: <p id="request-failed" data-network="…" data-server="…">
 * in base.html. Polls retry by themselves and stay quiet. */
(function () {
  'use strict';

  var box = document.getElementById('request-failed');
  if (!box) return;
  var timer = null;

  function polling(elt) {
    return !!elt && /\bevery\b/.test(elt.getAttribute('hx-trigger') || '');
  }

  function show(kind, ev) {
    if (polling(ev.detail && ev.detail.elt)) return;
    box.textContent = box.getAttribute(kind === 'server' ? 'data-server' : 'data-network');
    box.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  document.addEventListener('htmx:sendError', function (ev) { show('network', ev); });
  document.addEventListener('htmx:timeout', function (ev) { show('network', ev); });
  document.addEventListener('htmx:responseError', function (ev) { show('server', ev); });
  document.addEventListener('htmx:afterRequest', function (ev) {
    if (ev.detail && ev.detail.successful && !polling(ev.detail.elt)) box.hidden = true;
  });
})();

/* Tables as cards on a phone: each body cell of a table in a .table-wrap gets its column's
 * heading as data-label (on load and in whatever htmx swaps in), and the table the class
 * "cards"; below 640 px faka.css shows each row as a card, each value after its label.
 * Without JavaScript the table scrolls sideways inside its wrapper instead. */
(function () {
  'use strict';

  function headings(table) {
    var row = table.tHead && table.tHead.rows[0], names = [];
    if (!row) return null;
    for (var i = 0; i < row.cells.length; i++) {
      var text = row.cells[i].textContent.replace(/\s+/g, ' ').trim();
      for (var span = 0; span < row.cells[i].colSpan; span++) names.push(text);
    }
    return names;
  }

  function label(table) {
    var names = headings(table);
    if (!names) return;
    for (var b = 0; b < table.tBodies.length; b++) {
      var rows = table.tBodies[b].rows;
      for (var r = 0; r < rows.length; r++) {
        for (var c = 0, column = 0; c < rows[r].cells.length; c++) {
          var cell = rows[r].cells[c];
          // A cell across the whole row ("No orders match.") needs no label.
          if (names[column] && cell.colSpan < names.length) cell.setAttribute('data-label', names[column]);
          column += cell.colSpan;
        }
      }
    }
    table.classList.add('cards');
  }

  function labelTables(root) {
    var inside = root.closest ? root.closest('.table-wrap table') : null;
    if (inside) label(inside);
    var tables = root.querySelectorAll ? root.querySelectorAll('.table-wrap table') : [];
    for (var i = 0; i < tables.length; i++) label(tables[i]);
  }

  labelTables(document);
  document.addEventListener('htmx:load', function (ev) { labelTables(ev.target); });
})();
