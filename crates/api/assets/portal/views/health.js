// Health at a glance: every subscription's last 24 hours.

import { h, badge, emptyState, link, panel } from '../dom.js';
import { allSubscriptions, statsFor, styleName } from '../model.js';
import { healthBody } from '../components.js';

export async function render(ctx) {
  ctx.title('Health');
  const subs = await allSubscriptions(ctx.store);
  const root = h('div', { class: 'page' });
  root.appendChild(h('div', { class: 'page-head' },
    h('div', h('h1', { class: 'page-title' }, 'Health'),
      h('p', { class: 'page-subtitle' }, 'Success rate and delivery attempts per hour of each subscription over the last 24 hours. Counted per attempt: a delivery that succeeds on its retry counts one failure and one success.'))));
  if (!subs.length) {
    root.appendChild(emptyState('Nothing to show yet', 'Create a subscription, and its deliveries show up here.',
      h('a', { class: 'btn btn-primary', href: ctx.href('subscriptions/new') }, 'New subscription')));
    return root;
  }
  const stats = await statsFor(ctx.store, subs.map((s) => s.id)).catch(() => ({}));
  const grid = h('div', { class: 'cards' });
  // Those in trouble first.
  const score = (s) => {
    const st = stats[s.id];
    if (s.status === 'DEACTIVATED') return -2;
    if (!st || st.successRate === null) return 2;
    return st.successRate;
  };
  for (const s of [...subs].sort((a, b) => score(a) - score(b))) {
    const card = panel(h('span', { class: 'card-title' },
      link(ctx.href(`subscriptions/${encodeURIComponent(s.id)}`), s.destination, { class: 'break' })),
    h('p', { class: 'card-meta' }, badge(s.status), ' ', h('span', { class: 'muted small' }, `${styleName(s)} · ${s.eventTypes.join(', ')}`)),
    healthBody(stats[s.id]));
    card.classList.add('health-card');
    card.dataset.subscription = s.id;
    grid.appendChild(card);
  }
  root.appendChild(grid);
  return root;
}
