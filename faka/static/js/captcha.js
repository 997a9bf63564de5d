/* captcha.js: the proof-of-work check the risk engine asks for (faka/services/captcha.py).
 * Loads the vendored ALTCHA widget, "external" build: it injects no <style> and bundles no
 * blob: workers, so it runs under the site's CSP. This registers the PBKDF2 worker from
 * our own origin and gives the widget the page's translated labels:
 * <altcha-widget data-strings='{"label": "…", …}'>. A module, so it runs once per page
 * even when htmx swaps the form in again. */
import '../vendor/altcha/altcha.min.js';

const altcha = globalThis.$altcha;
const worker = new URL('../vendor/altcha/pbkdf2.js', import.meta.url);
altcha.algorithms.set('PBKDF2/SHA-256', () => new Worker(worker));

const widget = document.querySelector('altcha-widget[data-strings]');
if (widget) {
  // The widget picks its language from <html lang>; our strings replace its English ones.
  const language = (document.documentElement.lang || 'en').toLowerCase();
  altcha.i18n.set(language, Object.assign({}, altcha.i18n.get('en'), JSON.parse(widget.dataset.strings)));
}
