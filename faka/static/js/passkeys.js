/* passkeys.js: passkeys (WebAuthn) for signing in, the second step of a login, /reauth,
 * adding a passkey and confirming a payout. ES2017, no dependencies, CSP-safe.
 *
 * <div data-passkey="get|create|confirm" data-options="URL" data-verify="URL" data-csrf="…"
 *      data-cancelled="…" data-failed="…" data-exists="…" hidden>
 *   <button type="button" data-passkey-start>…</button>
 *   <p data-passkey-error hidden></p>
 * </div>
 *
 * The box stays hidden without JavaScript or without WebAuthn (the password and code
 * forms work alone); an element with data-passkey-unsupported shows in its place then. A tap asks `data-options` for the options, lets the browser make
 * (create) or use (get) a passkey, and posts the answer as JSON to `data-verify`, which
 * says where to go ({"redirect": url}) or what went wrong ({"error": message}).
 * "confirm" puts the answer in its form's hidden field `passkey` and submits the form
 * instead. Delegated on document, so it works in pages htmx swaps in too. */
(function () {
  'use strict';

  var supported = !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create &&
                     window.isSecureContext);

  // Passkey boxes show where WebAuthn works; [data-passkey-unsupported] notes where it does not.
  function reveal(root) {
    if (!root.querySelectorAll) return;
    var boxes = root.querySelectorAll(supported ? '[data-passkey]' : '[data-passkey-unsupported]');
    for (var i = 0; i < boxes.length; i++) boxes[i].hidden = false;
  }

  function toBuffer(text) {
    var b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    var binary = atob(b64), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), binary = '';
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function withBuffers(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, {id: toBuffer(c.id)}); });
  }

  function creationOptions(o) {
    return Object.assign({}, o, {
      challenge: toBuffer(o.challenge),
      user: Object.assign({}, o.user, {id: toBuffer(o.user.id)}),
      excludeCredentials: withBuffers(o.excludeCredentials)
    });
  }

  function requestOptions(o) {
    return Object.assign({}, o, {challenge: toBuffer(o.challenge), allowCredentials: withBuffers(o.allowCredentials)});
  }

  function credentialJSON(cred) {
    var r = cred.response, response = {clientDataJSON: toText(r.clientDataJSON)};
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = r.userHandle ? toText(r.userHandle) : null;
    }
    return {
      id: cred.id, rawId: toText(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(box, url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json',
                'X-CSRFToken': box.getAttribute('data-csrf') || ''},
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (data.redirect) {
          window.location.assign(data.redirect);
          return new Promise(function () {}); // leaving: nothing more to do here
        }
        if (!res.ok) throw {message: data.error || box.getAttribute('data-failed')};
        return data;
      });
    });
  }

  function say(box, text) {
    var line = box.querySelector('[data-passkey-error]');
    if (!line) return;
    line.textContent = text || '';
    line.hidden = !text;
  }

  function failure(box, err) {
    if (err && typeof err.message === 'string' && !(err instanceof Error)) return err.message;
    var name = err && err.name;
    if (name === 'NotAllowedError' || name === 'AbortError') return box.getAttribute('data-cancelled');
    if (name === 'InvalidStateError') return box.getAttribute('data-exists') || box.getAttribute('data-failed');
    return box.getAttribute('data-failed');
  }

  function start(box, button) {
    var kind = box.getAttribute('data-passkey');
    var form = kind === 'confirm' ? box.closest('form') : null;
    button.disabled = true;
    say(box, '');
    post(box, box.getAttribute('data-options'), {}).then(function (options) {
      return kind === 'create'
        ? navigator.credentials.create({publicKey: creationOptions(options)})
        : navigator.credentials.get({publicKey: requestOptions(options)});
    }).then(function (cred) {
      var answer = credentialJSON(cred);
      if (form) {
        form.querySelector('input[name=passkey]').value = JSON.stringify(answer);
        button.disabled = false;
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
        return null;
      }
      var body = {credential: answer};
      var nameField = box.getAttribute('data-name') && document.querySelector(box.getAttribute('data-name'));
      if (nameField) body.name = nameField.value;
      return post(box, box.getAttribute('data-verify'), body);
    }).catch(function (err) {
      button.disabled = false;
      say(box, failure(box, err));
    });
  }

  document.addEventListener('click', function (ev) {
    var button = ev.target.closest ? ev.target.closest('[data-passkey-start]') : null;
    var box = button && button.closest('[data-passkey]');
    if (!box || !supported) return;
    ev.preventDefault();
    start(box, button);
  });

  reveal(document);
  document.addEventListener('htmx:load', function (ev) { reveal(ev.target); });
})();
