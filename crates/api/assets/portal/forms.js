// Forms: labelled fields, the API's validation message next to the field it names (or at
// the form's top), and "Copy as curl" of the exact request the form sends.

import { h, uid, clear, copyText, announce, button } from './dom.js';
import { gql, ApiError, SessionEnded } from './api.js';
import { curlCommand } from './curl.js';

/** Does the API message `message` name `path` (a field path such as /x/input/url)? */
function names(message, path) {
  if (!message.startsWith(path)) return false;
  const next = message.charAt(path.length);
  return next === '' || next === ' ' || next === '/' || next === ':' || next === ',';
}

export class Form {
  /**
   * @param {object} o
   * @param {string} o.label        accessible name of the form
   * @param {string} o.submitLabel
   * @param {string} o.store        the store whose GraphQL the form calls
   * @param {() => {query, variables}} o.build   the request, from the fields' values
   * @param {(data) => void} o.onSuccess
   */
  constructor({ label, submitLabel = 'Save', store, build, onSuccess, secondary = [], id = null }) {
    this.store = store;
    this.build = build;
    this.onSuccess = onSuccess;
    this.fields = [];
    this.topError = h('div', { class: 'alert alert-bad form-top-error', role: 'alert', tabindex: '-1', hidden: true });
    this.body = h('div', { class: 'form-body' });
    this.submitButton = h('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel);
    this.curlOut = h('div', { class: 'curl-out', hidden: true });
    const curlBtn = button('Copy as curl', () => this.copyCurl(), { class: 'btn btn-ghost', 'data-action': 'copy-curl' });
    this.actions = h('div', { class: 'form-actions' }, this.submitButton, secondary, h('span', { class: 'spacer' }), curlBtn);
    this.el = h('form', { class: 'form', novalidate: true, 'aria-label': label, id },
      this.topError, this.body, this.actions, this.curlOut);
    this.el.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  /**
   * Adds a labelled field. `paths`: the API field paths whose messages belong here.
   * `control` is an input/select/textarea, or any element with `labelFor` (the id to
   * label) and `invalidTargets` (elements that get aria-invalid). `check`: a checkbox,
   * drawn before its label, with the hint and the error under both.
   */
  field({ label, control, hint = null, paths = [], className = '', legend = false, check = false }) {
    const errorId = uid('err');
    const hintId = hint ? uid('hint') : null;
    const error = h('p', { class: 'field-error', id: errorId, hidden: true });
    const hintEl = hint ? h('p', { class: 'field-hint', id: hintId }, hint) : null;
    let wrapper;
    let targets;
    if (check) {
      if (!control.id) control.id = uid('ctl');
      wrapper = h('div', { class: ['field', 'field-option', className] },
        h('div', { class: 'field-check' }, control, h('label', { class: 'field-label', for: control.id }, label)), hintEl, error);
      control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
      targets = () => [control];
    } else if (legend) {
      // A group of controls (checkbox lists, header rows): a fieldset and its legend.
      wrapper = h('fieldset', { class: ['field', 'field-group', className] },
        h('legend', { class: 'field-label' }, label), hintEl, control, error);
      wrapper.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
      targets = () => (control.invalidTargets ? control.invalidTargets() : [wrapper]);
    } else {
      if (!control.id) control.id = uid('ctl');
      wrapper = h('div', { class: ['field', className] },
        h('label', { class: 'field-label', for: control.id }, label), hintEl, control, error);
      control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
      targets = () => [control];
    }
    const entry = { paths, error, targets, wrapper };
    this.fields.push(entry);
    return wrapper;
  }

  /** Registers an extra error slot (e.g. one header row) for more precise paths. */
  slot({ paths, error, targets }) {
    const entry = { paths, error, targets, wrapper: null };
    this.fields.push(entry);
    return () => {
      const i = this.fields.indexOf(entry);
      if (i >= 0) this.fields.splice(i, 1);
    };
  }

  /** A titled group of fields (made with `field`): a fieldset and its legend. */
  group(label, ...fields) {
    return h('fieldset', { class: 'field field-group field-set' },
      h('legend', { class: 'field-label' }, label),
      h('div', { class: 'subform' }, fields));
  }

  add(...nodes) {
    for (const n of nodes) if (n) this.body.appendChild(n);
    return this;
  }

  clearErrors() {
    this.topError.hidden = true;
    clear(this.topError);
    for (const f of this.fields) {
      f.error.hidden = true;
      f.error.textContent = '';
      for (const t of f.targets()) t.removeAttribute('aria-invalid');
      if (f.wrapper) f.wrapper.classList.remove('has-error');
    }
  }

  /** Shows an API error next to the field its message names, else at the top. */
  showError(err) {
    const message = err && err.message ? err.message : String(err);
    let best = null;
    let bestLen = -1;
    for (const f of this.fields) {
      for (const p of f.paths) {
        if (p.length > bestLen && names(message, p)) {
          best = f;
          bestLen = p.length;
        }
      }
    }
    if (best) {
      best.error.textContent = message;
      best.error.hidden = false;
      if (best.wrapper) best.wrapper.classList.add('has-error');
      const targets = best.targets();
      for (const t of targets) t.setAttribute('aria-invalid', 'true');
      if (targets[0] && typeof targets[0].focus === 'function') targets[0].focus();
    } else {
      clear(this.topError);
      const title = err instanceof ApiError && err.isAccessDenied ? 'Access denied' : 'Not saved';
      this.topError.appendChild(h('strong', { class: 'alert-title' }, title));
      this.topError.appendChild(h('span', message));
      this.topError.hidden = false;
      this.topError.focus();
    }
  }

  async submit() {
    this.clearErrors();
    let request;
    try {
      request = this.build();
    } catch (e) {
      this.showError(e);
      return;
    }
    this.submitButton.disabled = true;
    this.el.setAttribute('aria-busy', 'true');
    try {
      const data = await gql(this.store, request.query, request.variables);
      await this.onSuccess(data, request);
    } catch (e) {
      if (!(e instanceof SessionEnded)) this.showError(e);
    } finally {
      this.submitButton.disabled = false;
      this.el.removeAttribute('aria-busy');
    }
  }

  copyCurl() {
    let request;
    try {
      request = this.build();
    } catch (e) {
      this.showError(e);
      return;
    }
    const command = curlCommand(this.store, request);
    clear(this.curlOut);
    this.curlOut.appendChild(h('p', { class: 'field-hint' },
      'The same request with an API token of your own in $HOOKRELAY_TOKEN:'));
    this.curlOut.appendChild(h('pre', { class: 'code', 'data-curl': '' }, command));
    this.curlOut.hidden = false;
    copyText(command, 'curl command copied').catch(() => announce('Copy failed', 'bad'));
  }
}

export function input(attrs = {}) {
  return h('input', { type: 'text', class: 'input', autocomplete: 'off', spellcheck: 'false', ...attrs });
}

export function select(options, attrs = {}, value = null) {
  const el = h('select', { class: 'input', ...attrs });
  for (const o of options) {
    const opt = typeof o === 'string' ? { value: o, label: o } : o;
    el.appendChild(h('option', { value: opt.value, selected: opt.value === value }, opt.label));
  }
  return el;
}

/**
 * Key/value rows (custom headers, OAuth parameters). `pathOf(i)` gives the API path of
 * row i, so that "…/headers/2/key …" lands on the third row.
 */
export function keyValueEditor(form, { initial = [], pathOf, addLabel = 'Add header', keyLabel = 'Name', valueLabel = 'Value', keyPlaceholder = '', valuePlaceholder = '' }) {
  const rows = [];
  const list = h('div', { class: 'kv-list' });
  const container = h('div', { class: 'kv' }, list);
  const addBtn = button(addLabel, () => {
    const row = addRow('', '');
    row.key.focus();
  }, { class: 'btn btn-small' });
  container.appendChild(addBtn);

  function renumber() {
    rows.forEach((r, i) => {
      r.key.setAttribute('aria-label', `${keyLabel} ${i + 1}`);
      r.value.setAttribute('aria-label', `${valueLabel} ${i + 1}`);
      r.remove.setAttribute('aria-label', `Remove row ${i + 1}`);
      r.index = i;
    });
  }

  function addRow(k, v) {
    const key = input({ value: k, placeholder: keyPlaceholder, class: 'input kv-key' });
    const value = input({ value: v, placeholder: valuePlaceholder, class: 'input kv-value' });
    const error = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    key.setAttribute('aria-describedby', error.id);
    value.setAttribute('aria-describedby', error.id);
    const row = { key, value, error, index: rows.length };
    const remove = button('Remove', () => {
      rows.splice(rows.indexOf(row), 1);
      el.remove();
      row.unslot();
      renumber();
    }, { class: 'btn btn-small btn-ghost' });
    row.remove = remove;
    const el = h('div', { class: 'kv-row' }, key, value, remove, error);
    row.unslot = form.slot({
      paths: [],
      error,
      targets: () => [key, value],
    });
    // The row's paths follow its index at the time of the error.
    const entry = form.fields[form.fields.length - 1];
    Object.defineProperty(entry, 'paths', { get: () => [`${pathOf(row.index)}/key`, `${pathOf(row.index)}/value`, pathOf(row.index)] });
    Object.defineProperty(entry, 'targets', {
      value: () => {
        return [key, value];
      },
    });
    rows.push(row);
    list.appendChild(el);
    renumber();
    return row;
  }

  for (const kv of initial) addRow(kv.key, kv.value);
  container.invalidTargets = () => (rows.length ? [rows[0].key] : [addBtn]);
  container.values = () => rows.map((r) => ({ key: r.key.value, value: r.value.value })).filter((r) => r.key !== '' || r.value !== '');
  return container;
}
