/* theme.js: the visitor's light or dark choice, remembered by this browser. ES2017, CSP-safe.
 * Loaded in <head> without defer, so a remembered choice is on <html data-theme> before the
 * page is drawn (faka.css reads it); with no choice, or without JavaScript, the system's
 * preference applies. Pages are the same for everyone (cached), so the choice lives here,
 * in localStorage, never in the HTML.
 * The switch, <button data-theme-toggle aria-pressed hidden>, is shown only by this script:
 * it flips between light and dark, and a choice that matches the system's is forgotten, so
 * the page follows the system again from then on. */
(function () {
  'use strict';
  var KEY = 'faka-theme';
  var root = document.documentElement;
  var system = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
  var barColours = {};

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; } // storage off: the system's choice
  }

  function remember(choice) {
    try {
      if (choice) localStorage.setItem(KEY, choice); else localStorage.removeItem(KEY);
    } catch (e) { /* storage off: the choice lasts for this page only */ }
  }

  function apply(choice) {
    if (choice === 'dark' || choice === 'light') root.setAttribute('data-theme', choice);
    else root.removeAttribute('data-theme');
  }

  function systemTheme() { return system && system.matches ? 'dark' : 'light'; }

  function shown() { return root.getAttribute('data-theme') || systemTheme(); }

  // The switches on the page (htmx may have brought a new one) and the phone's bar colour.
  function sync() {
    var dark = shown() === 'dark';
    var buttons = document.querySelectorAll('[data-theme-toggle]');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].setAttribute('aria-pressed', dark ? 'true' : 'false');
    }
    var metas = document.querySelectorAll('meta[name=theme-color][data-scheme]');
    for (var j = 0; j < metas.length; j++) {
      var scheme = metas[j].getAttribute('data-scheme');
      if (!(scheme in barColours)) barColours[scheme] = metas[j].getAttribute('content');
    }
    var forced = root.getAttribute('data-theme');
    for (var k = 0; k < metas.length; k++) {
      var own = metas[k].getAttribute('data-scheme');
      metas[k].setAttribute('content', barColours[forced || own] || barColours[own]);
    }
  }

  apply(stored());

  document.addEventListener('click', function (ev) {
    var button = ev.target.closest ? ev.target.closest('[data-theme-toggle]') : null;
    if (!button) return;
    var next = shown() === 'dark' ? 'light' : 'dark';
    var choice = next === systemTheme() ? null : next;
    remember(choice);
    apply(choice);
    sync();
  });
  document.addEventListener('DOMContentLoaded', sync);
  document.addEventListener('htmx:afterSettle', sync);
  document.addEventListener('htmx:historyRestore', sync);
  if (system) {
    if (system.addEventListener) system.addEventListener('change', sync); else system.addListener(sync);
  }
  // Another tab of the shop switched: follow it.
  window.addEventListener('storage', function (ev) {
    if (ev.key === KEY) { apply(ev.newValue); sync(); }
  });

  // The console's accent colour: <input type=color data-hex-for=ID> and its hex text, kept equal.
  document.addEventListener('input', function (ev) {
    var field = ev.target;
    if (field.matches && field.matches('input[type=color][data-hex-for]')) {
      var text = document.getElementById(field.getAttribute('data-hex-for'));
      if (text) text.value = field.value;
    } else if (field.id) {
      var picker = document.querySelector('input[type=color][data-hex-for="' + CSS.escape(field.id) + '"]');
      if (picker && /^#[0-9a-fA-F]{6}$/.test(field.value.trim())) picker.value = field.value.trim().toLowerCase();
    }
  });
})();
