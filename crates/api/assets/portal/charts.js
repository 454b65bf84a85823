// Small bar charts drawn as inline SVG (createElementNS); colours come from classes in
// app.css, never from style attributes.

import { svg, h } from './dom.js';

/**
 * Stacked bars of succeeded (bottom) and failed (top) counts.
 * `buckets`: [{label, succeeded, failed}], oldest first.
 */
export function stackedBars(buckets, { title, width = 480, height = 120, compact = false, unit = 'attempts' } = {}) {
  const n = Math.max(buckets.length, 1);
  const max = Math.max(1, ...buckets.map((b) => (b.succeeded || 0) + (b.failed || 0)));
  // The SVG stretches to its box (preserveAspectRatio none), so it holds shapes only:
  // the labels are HTML around it, and never get distorted.
  const innerH = height;
  const slot = width / n;
  const barW = Math.max(1, slot * 0.7);
  const total = buckets.reduce((s, b) => s + (b.succeeded || 0) + (b.failed || 0), 0);
  const failed = buckets.reduce((s, b) => s + (b.failed || 0), 0);
  const label = `${title}: ${total} ${unit}, ${failed} failed, over ${buckets.length} intervals`;
  const root = svg('svg', {
    class: compact ? 'chart chart-compact' : 'chart',
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': label,
    width: compact ? width : null,
    height: compact ? height : null,
  }, svg('title', {}, label));
  if (!compact) {
    root.appendChild(svg('line', { class: 'chart-grid', x1: 0, x2: width, y1: 0.5, y2: 0.5, 'vector-effect': 'non-scaling-stroke' }));
    root.appendChild(svg('line', { class: 'chart-grid', x1: 0, x2: width, y1: height / 2, y2: height / 2, 'vector-effect': 'non-scaling-stroke' }));
  }
  buckets.forEach((b, i) => {
    const x = i * slot + (slot - barW) / 2;
    const ok = b.succeeded || 0;
    const bad = b.failed || 0;
    const okH = (ok / max) * innerH;
    const badH = (bad / max) * innerH;
    const g = svg('g', { class: 'chart-bar' }, svg('title', {}, `${b.label}: ${ok} succeeded, ${bad} failed`));
    if (ok > 0) g.appendChild(svg('rect', { class: 'bar-ok', x: x.toFixed(2), y: (innerH - okH).toFixed(2), width: barW.toFixed(2), height: Math.max(okH, 1).toFixed(2) }));
    if (bad > 0) g.appendChild(svg('rect', { class: 'bar-bad', x: x.toFixed(2), y: (innerH - okH - badH).toFixed(2), width: barW.toFixed(2), height: Math.max(badH, 1).toFixed(2) }));
    if (ok === 0 && bad === 0) g.appendChild(svg('rect', { class: 'bar-none', x: x.toFixed(2), y: (innerH - 1).toFixed(2), width: barW.toFixed(2), height: 1 }));
    root.appendChild(g);
  });
  if (compact) return root;
  const first = buckets.length ? buckets[0].short || '' : '';
  const last = buckets.length ? buckets[buckets.length - 1].short || '' : '';
  return h('div', { class: 'chart-frame' },
    h('div', { class: 'chart-y', 'aria-hidden': 'true' }, h('span', String(max)), h('span', String(Math.round(max / 2) === max / 2 ? max / 2 : '')), h('span', '0')),
    h('div', { class: 'chart-plot' }, root),
    h('div', { class: 'chart-x', 'aria-hidden': 'true' }, h('span', first), h('span', last)));
}

export function legend() {
  return h('div', { class: 'chart-legend', 'aria-hidden': 'true' },
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-ok' }), 'Succeeded'),
    h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-bad' }), 'Failed'));
}
