// Pieces shared by several pages: a subscription's actions, its health, its signing
// secret (or Ed25519 public key) and its test event.

import { h, button, badge, confirmDialog, announce, copyButton, time, alertBox, clear, formatTime, panel, link } from './dom.js';
import { gql, ApiError, SessionEnded } from './api.js';
import { stackedBars, legend } from './charts.js';
import { getDelivery, DELIVERY_FIELDS } from './model.js';

export const UPDATE_WEBHOOK = `mutation UpdateWebhook($input: UpdateWebhookInput!) {
  webhook { updateWebhook(input: $input) { webhook { id status isActive } } }
}`;

export const DELETE_WEBHOOK = `mutation DeleteWebhook($id: ID!) {
  webhook { deleteWebhook(id: $id) { id } }
}`;

export const DELETE_EVENT_SUBSCRIPTION = `mutation DeleteEventSubscription($id: String!) {
  deleteEventSubscription(subscriptionId: $id) { subscriptionId }
}`;

function report(e) {
  if (e instanceof SessionEnded) return;
  announce(e.message || String(e), 'bad');
}

export const SET_EVENT_SUBSCRIPTION_STATUS = `mutation SetEventSubscriptionStatus($id: String!, $status: SubscriptionStatus!) {
  setEventSubscriptionStatus(subscriptionId: $id, status: $status) { subscriptionId status isActive }
}`;

/** Enable / Disable / Reactivate: `updateWebhook` for BigCommerce webhooks,
 * `setEventSubscriptionStatus` for Buy with Prime subscriptions. */
export function stateButton(store, sub, onChanged) {
  const label = sub.status === 'ACTIVE' ? 'Disable' : sub.status === 'DEACTIVATED' ? 'Reactivate' : 'Enable';
  const activate = sub.status !== 'ACTIVE';
  const btn = button(label, async () => {
    btn.disabled = true;
    try {
      if (sub.style === 'bigcommerce') {
        await gql(store, UPDATE_WEBHOOK, { input: { id: sub.id, data: { isActive: activate } } });
      } else {
        await gql(store, SET_EVENT_SUBSCRIPTION_STATUS, { id: sub.id, status: activate ? 'ACTIVE' : 'INACTIVE' });
      }
      announce(`${sub.destination}: ${activate ? (label === 'Reactivate' ? 'reactivated' : 'enabled') : 'disabled'}`);
      await onChanged();
    } catch (e) {
      report(e);
    } finally {
      btn.disabled = false;
    }
  }, { class: activate ? 'btn btn-small btn-primary' : 'btn btn-small', 'data-action': label.toLowerCase(), 'aria-label': `${label} ${sub.destination}` });
  return btn;
}

export function deleteButton(store, sub, onDeleted) {
  const btn = button('Delete', async () => {
    const yes = await confirmDialog({
      title: 'Delete this subscription?',
      message: `Deliveries to ${sub.destination} stop at once, and the subscription cannot be restored.`,
      details: h('p', { class: 'muted' }, h('code', sub.id)),
      confirmLabel: 'Delete subscription',
      danger: true,
    });
    if (!yes) return;
    btn.disabled = true;
    try {
      if (sub.style === 'bigcommerce') await gql(store, DELETE_WEBHOOK, { id: sub.id });
      else await gql(store, DELETE_EVENT_SUBSCRIPTION, { id: sub.id });
      announce('Subscription deleted');
      await onDeleted();
    } catch (e) {
      report(e);
      btn.disabled = false;
    }
  }, { class: 'btn btn-small btn-danger-ghost', 'data-action': 'delete', 'aria-label': `Delete ${sub.destination}` });
  return btn;
}

function pct(rate) {
  if (rate === null || rate === undefined) return '—';
  const v = rate * 100;
  return `${v >= 99.95 || v === 0 ? v.toFixed(0) : v.toFixed(1)} %`;
}

function bucketsOf(stats) {
  return (stats.buckets || []).map((b) => {
    const d = new Date(b.start);
    const hour = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    return { label: `${formatTime(b.start)}`, short: hour, succeeded: b.succeeded, failed: b.failed };
  });
}

/** A one-line health summary for a table cell. */
export function healthCell(stats) {
  if (stats === undefined) return h('span', { class: 'muted' }, '…');
  if (!stats) return h('span', { class: 'muted' }, 'n/a');
  const total = stats.succeeded + stats.failed;
  const tone = stats.successRate === null ? 'muted' : stats.successRate >= 0.99 ? 'ok' : stats.successRate >= 0.9 ? 'warn' : 'bad';
  return h('div', { class: 'health-cell' },
    stackedBars(bucketsOf(stats), { title: 'Delivery attempts, last 24 h', width: 96, height: 24, compact: true }),
    h('span', { class: `rate rate-${tone}` }, total ? pct(stats.successRate) : 'no traffic'));
}

/** Success rate, deliveries per hour, chart and last error of one subscription. */
export function healthBody(stats, hours = 24) {
  if (!stats) return alertBox('No delivery statistics are available for this subscription.', 'info');
  const total = stats.succeeded + stats.failed;
  const perHour = total / hours;
  const tone = stats.successRate === null ? 'muted' : stats.successRate >= 0.99 ? 'ok' : stats.successRate >= 0.9 ? 'warn' : 'bad';
  const last = stats.lastError;
  return h('div', { class: 'health' },
    h('div', { class: 'metrics' },
      h('div', { class: 'metric' }, h('span', { class: 'metric-label' }, 'Success rate'), h('span', { class: `metric-value rate-${tone}`, 'data-metric': 'success-rate' }, pct(stats.successRate))),
      h('div', { class: 'metric' }, h('span', { class: 'metric-label' }, 'Attempts per hour'), h('span', { class: 'metric-value', 'data-metric': 'per-hour' }, perHour >= 10 ? perHour.toFixed(0) : perHour.toFixed(1))),
      h('div', { class: 'metric' }, h('span', { class: 'metric-label' }, `Attempts ok / failed (${hours} h)`), h('span', { class: 'metric-value' }, `${stats.succeeded} / ${stats.failed}`))),
    h('figure', { class: 'chart-figure' }, stackedBars(bucketsOf(stats), { title: `Delivery attempts per hour, last ${hours} hours` }), h('figcaption', legend())),
    last
      ? h('div', { class: 'last-error', 'data-last-error': '' },
        h('span', { class: 'metric-label' }, 'Last error'),
        h('p', h('strong', last.statusCode ? `HTTP ${last.statusCode}` : 'No answer'), ' · ', time(last.at)),
        last.error ? h('p', { class: 'error-text' }, last.error) : null)
      : h('p', { class: 'muted' }, 'No errors in this period.'));
}

export const ROTATE_SIGNING_SECRET = `mutation RotateSigningSecret($id: String!) {
  rotateSigningSecret(subscriptionId: $id) { subscriptionId signingSecret signingPublicKey previousSecretExpiresAt }
}`;

/** Rotate, after a confirmation; `onDone(rotateSigningSecret)` with the answer. */
function rotateButton(store, sub, { title, message, confirmLabel }, onDone) {
  const rotate = button('Rotate', async () => {
    const yes = await confirmDialog({ title, message, confirmLabel });
    if (!yes) return;
    rotate.disabled = true;
    try {
      const data = await gql(store, ROTATE_SIGNING_SECRET, { id: sub.id });
      onDone(data.rotateSigningSecret);
    } catch (e) {
      report(e);
    } finally {
      rotate.disabled = false;
    }
  }, { class: 'btn btn-small', 'data-action': 'rotate' });
  return rotate;
}

/** Hidden until revealed; Copy; Rotate (with the overlap explained). An ED25519
 * subscription has a public key instead (publicKeyPanel). */
export function secretPanel(store, sub, onRotated) {
  if (sub.signatureScheme === 'ED25519') return publicKeyPanel(store, sub, onRotated);
  let secret = sub.signingSecret;
  let revealed = false;
  let previousUntil = null;
  const value = h('code', { class: 'secret-value', 'data-secret': '', 'aria-live': 'polite' });
  const reveal = button('Reveal', () => {
    revealed = !revealed;
    render();
  }, { class: 'btn btn-small', 'data-action': 'reveal', 'aria-pressed': 'false' });
  const copy = copyButton(() => secret, 'Copy', 'Signing secret copied', { 'data-action': 'copy-secret' });
  const rotate = rotateButton(store, sub, {
    title: 'Rotate the signing secret?',
    message: 'A new secret signs every delivery from now on. The old one keeps signing alongside it for 24 hours, so receivers can switch over without missing a delivery.',
    confirmLabel: 'Rotate secret',
  }, (answer) => {
    secret = answer.signingSecret;
    previousUntil = answer.previousSecretExpiresAt;
    revealed = false;
    render();
    announce('Signing secret rotated');
    if (onRotated) onRotated(secret);
  });
  const note = h('p', { class: 'field-hint', 'data-rotation-note': '' });

  function render() {
    value.textContent = revealed ? secret : '••••••••••••••••••••••••';
    value.classList.toggle('is-hidden', !revealed);
    reveal.textContent = revealed ? 'Hide' : 'Reveal';
    reveal.setAttribute('aria-pressed', String(revealed));
    note.textContent = previousUntil
      ? `Rotated: the previous secret keeps signing alongside the new one until ${formatTime(previousUntil)}.`
      : 'Rotating keeps the old secret signing alongside the new one for 24 hours.';
  }

  if (!secret) {
    return panel('Signing secret', h('p', { class: 'muted' },
      'The signing secret is shown only to the app that created this subscription.'));
  }
  render();
  return panel('Signing secret',
    h('p', { class: 'field-hint' }, 'Deliveries carry a ', link('https://www.standardwebhooks.com', 'Standard Webhooks'), ' signature (webhook-signature: v1,…) made with this secret: any of its libraries verifies it.'),
    h('div', { class: 'secret-row' }, value, h('div', { class: 'btn-row' }, reveal, copy, rotate)),
    note);
}

/**
 * ED25519 (docs/payloads.md, asymmetric signatures): the public key receivers verify
 * with, shown as it is (it cannot sign); Copy; Rotate makes a new key pair. The secret
 * key is never shown, not even to the owner.
 */
function publicKeyPanel(store, sub, onRotated) {
  let key = sub.signingPublicKey;
  let previousUntil = null;
  if (!key) {
    return panel('Public key', h('p', { class: 'muted' },
      'The public key is shown only to the app that created this subscription.'));
  }
  const value = h('code', { class: 'secret-value break', 'data-public-key': '', 'aria-live': 'polite' });
  const copy = copyButton(() => key, 'Copy', 'Public key copied', { 'data-action': 'copy-public-key' });
  const rotate = rotateButton(store, sub, {
    title: 'Rotate the signing key?',
    message: 'A new key pair signs every delivery from now on. The old key keeps signing alongside it for 24 hours, so receivers can add the new public key without missing a delivery.',
    confirmLabel: 'Rotate key',
  }, (answer) => {
    key = answer.signingPublicKey;
    previousUntil = answer.previousSecretExpiresAt;
    render();
    announce('Signing key rotated');
    if (onRotated) onRotated(key);
  });
  const note = h('p', { class: 'field-hint', 'data-rotation-note': '' });

  function render() {
    value.textContent = key;
    note.textContent = previousUntil
      ? `Rotated: the previous key keeps signing alongside the new one until ${formatTime(previousUntil)}.`
      : 'Rotating keeps the old key signing alongside the new one for 24 hours.';
  }

  render();
  return panel('Public key',
    h('p', { class: 'field-hint' }, 'Deliveries carry an Ed25519 signature (webhook-signature: v1a,…, as the ', link('https://www.standardwebhooks.com', 'Standard Webhooks'), ' spec describes it) that receivers verify with this public key. It cannot sign, so it need not be kept secret.'),
    h('div', { class: 'secret-row' }, value, h('div', { class: 'btn-row' }, copy, rotate)),
    note);
}

function attemptLine(a) {
  return h('li', { class: 'attempt-line' },
    time(a.startedAt), ' · ',
    h('strong', a.statusCode ? `HTTP ${a.statusCode}` : 'no answer'), ' · ',
    `${a.durationMs} ms`,
    a.error ? h('span', { class: 'error-text' }, ` · ${a.error}`) : null);
}

/** "Send test event", then the delivery's result as its attempts come in. */
export function testEventPanel(store, sub, ctx) {
  const out = h('div', { class: 'test-result', 'aria-live': 'polite', 'data-test-result': '' });
  const send = button('Send test event', async () => {
    send.disabled = true;
    clear(out);
    out.appendChild(h('p', { class: 'muted' }, 'Sending…'));
    try {
      const data = await gql(store, `mutation SendTestEvent($id: String!) {
  sendTestEvent(subscriptionId: $id) { eventId deliveryId }
}`, { id: sub.id });
      await follow(data.sendTestEvent.deliveryId);
    } catch (e) {
      if (!(e instanceof SessionEnded)) {
        clear(out);
        out.appendChild(alertBox(e.message));
      }
    } finally {
      send.disabled = false;
    }
  }, { class: 'btn btn-primary', 'data-action': 'send-test' });

  async function follow(deliveryId) {
    const started = Date.now();
    for (;;) {
      if (!ctx.isCurrent()) return;
      let d;
      try {
        d = await getDelivery(store, deliveryId);
      } catch (e) {
        if (e instanceof SessionEnded) return;
        throw e;
      }
      clear(out);
      const final = d.status === 'SUCCEEDED' || d.status === 'FAILED';
      out.appendChild(h('p', { class: 'test-status' }, badge(d.status), ' ',
        h('a', { href: ctx.href(`deliveries/${encodeURIComponent(d.id)}`) }, d.id)));
      if (d.attempts.length) out.appendChild(h('ol', { class: 'attempt-lines' }, d.attempts.map(attemptLine)));
      if (!final && d.nextAttemptAt && d.attempts.length) {
        out.appendChild(h('p', { class: 'muted' }, 'Next attempt ', time(d.nextAttemptAt), '. This page follows it while it stays open.'));
      } else if (!final) {
        out.appendChild(h('p', { class: 'muted' }, 'Waiting for the receiver…'));
      }
      if (final) return;
      // Quick at first, then slower: a retry may be minutes away.
      const waited = Date.now() - started;
      const delay = waited < 30000 ? 700 : waited < 300000 ? 5000 : 30000;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  return panel('Test event',
    h('p', { class: 'field-hint' }, 'Sends a test event to this subscription only, signed and authenticated as real ones are.'),
    h('div', { class: 'btn-row' }, send), out);
}

export { DELIVERY_FIELDS, ApiError };
