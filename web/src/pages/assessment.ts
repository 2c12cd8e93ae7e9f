// Assessment (Art. 12): per-department and per-grid figures for a period as tables and
// a chart (on-time rate counting open overdue cases against it; handling time), and a
// map of cases per 1,000 households by grid.

import { h, fill, toast, chinaDay } from '../dom';
import { t, lang } from '../i18n';
import { get, query, token, describe } from '../api';
import { createMap, showGeoJSON, bboxOf, zoomTo } from '../map';
import type { Cleanup } from '../main';

interface Row {
  key: string; name?: string; received: number; resolved_on_site: number; handled_on_time: number; handled_late: number;
  open_overdue: number; on_time_rate: number | null; returns: number; extensions: number; supervisions: number;
  mean_handling_hours: number | null; p90_handling_hours: number | null;
}
interface Assessment { departments: Row[]; grids: Row[]; members: Row[] }
interface Department { code: string; name: string }

const COLS: [string, (r: Row) => string | number][] = [
  ['assess.received', (r) => r.received],
  ['assess.on_site', (r) => r.resolved_on_site],
  ['assess.on_time', (r) => r.handled_on_time],
  ['assess.late', (r) => r.handled_late],
  ['assess.open_overdue', (r) => r.open_overdue],
  ['assess.rate', (r) => (r.on_time_rate === null ? '—' : `${(r.on_time_rate * 100).toFixed(1)}%`)],
  ['assess.returns', (r) => r.returns],
  ['assess.extensions', (r) => r.extensions],
  ['assess.supervisions', (r) => r.supervisions],
  ['assess.mean_hours', (r) => (r.mean_handling_hours === null ? '—' : r.mean_handling_hours.toFixed(1))],
  ['assess.p90_hours', (r) => (r.p90_handling_hours === null ? '—' : r.p90_handling_hours.toFixed(1))],
];

function table(id: string, rows: Row[], name: (key: string) => string): HTMLElement {
  if (!rows.length) return h('p', { class: 'empty' }, t('assess.none'));
  // Wider than a phone: the table scrolls sideways in its own box, not the page.
  return h('div', { class: 'table-scroll' }, h('table', { class: 'figures', id },
    h('thead', {}, h('tr', {}, h('th', {}, ''), COLS.map(([k]) => h('th', {}, t(k))))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-key': r.key },
      h('th', {}, name(r.key), name(r.key) !== r.key ? h('small', { class: 'code' }, ` ${r.key}`) : null),
      COLS.map(([, f]) => h('td', {}, f(r))))))));
}

/** Horizontal bars of the on-time rate and mean handling time, one row per key (a
 * sentence instead when no row has either yet). */
function chart(rows: Row[], name: (key: string) => string): Element {
  const ns = 'http://www.w3.org/2000/svg';
  const shown = rows.filter((r) => r.on_time_rate !== null || r.mean_handling_hours !== null).slice(0, 20);
  if (!shown.length) return h('p', { class: 'empty', id: 'chart-empty' }, t('assess.no_rates'));
  const rowH = 22, labelW = 180, barW = 260, width = labelW + barW * 2 + 40;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${(shown.length + 1) * rowH + 10}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const maxHours = Math.max(1, ...shown.map((r) => r.mean_handling_hours ?? 0));
  const el = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  el('text', { x: labelW, y: 14, class: 'head' }, t('assess.rate'));
  el('text', { x: labelW + barW + 20, y: 14, class: 'head' }, t('assess.mean_hours'));
  shown.forEach((r, i) => {
    const y = (i + 1) * rowH + 4;
    el('text', { x: labelW - 6, y: y + 13, 'text-anchor': 'end' }, name(r.key).slice(0, 16));
    const rate = r.on_time_rate ?? 0;
    el('rect', { x: labelW, y, width: Math.max(1, rate * barW), height: rowH - 6, class: rate < 0.8 ? 'bar low' : 'bar' });
    el('text', { x: labelW + Math.max(1, rate * barW) + 4, y: y + 13 }, r.on_time_rate === null ? '—' : `${Math.round(rate * 100)}%`);
    const hours = r.mean_handling_hours ?? 0;
    el('rect', { x: labelW + barW + 20, y, width: Math.max(1, (hours / maxHours) * (barW - 40)), height: rowH - 6, class: 'bar hours' });
    el('text', { x: labelW + barW + 24 + (hours / maxHours) * (barW - 40), y: y + 13 }, r.mean_handling_hours === null ? '—' : hours.toFixed(1));
  });
  return svg;
}

export async function assessmentPage(root: HTMLElement): Promise<Cleanup> {
  // This month so far, today included, in China's days: from 00:00 to 08:00 China time
  // the UTC date is still yesterday's, and a period ending on it would leave today out.
  const from = h('input', { type: 'date', id: 'assess-from', value: `${chinaDay().slice(0, 8)}01` });
  const to = h('input', { type: 'date', id: 'assess-to', value: chinaDay(Date.now() + 86_400_000) });
  const csv = h('button', { class: 'secondary', type: 'button' }, t('assess.csv'));
  const form = h('form', { class: 'filters' }, h('label', {}, t('assess.from'), from), h('label', {}, t('assess.to'), to), h('button', { type: 'submit' }, t('assess.go')), csv);
  const out = h('div', { class: 'assessment', id: 'assessment' });
  const mapEl = h('div', { class: 'map', id: 'density-map' });
  const legend = h('div', { class: 'scale', id: 'density-legend' });
  fill(root, h('h2', {}, t('assess.title')), form, h('div', { class: 'assess-split' }, out, h('section', {}, h('h3', {}, t('assess.density')), mapEl, legend)));
  const departments = await get<Department[]>('/v1/departments').catch(() => [] as Department[]);
  const deptName = (code: string) => departments.find((d) => d.code === code)?.name ?? code;
  // Names where the service knows them, the code otherwise.
  let names = new Map<string, string>();
  const nameOf = (key: string) => names.get(key) ?? deptName(key);
  const map = await createMap(mapEl, { name: 'density' });

  const period = () => query({ from: `${from.value}T00:00:00+08:00`, to: `${to.value}T00:00:00+08:00` });
  const load = async () => {
    const a = await get<Assessment>(`/v1/assessment${period()}`);
    names = new Map([...a.departments, ...a.grids].flatMap((r) => (r.name ? [[r.key, r.name] as [string, string]] : [])));
    fill(out,
      h('h3', {}, t('assess.departments')), chart(a.departments, nameOf), table('departments', a.departments, nameOf),
      h('h3', {}, t('assess.grids')), chart(a.grids, nameOf), table('grids', a.grids, nameOf));
    const density = await get<GeoJSON.FeatureCollection>(`/v1/analysis/density${period()}&top=500`);
    const values = density.features.map((f: GeoJSON.Feature) => Number(f.properties?.cases_per_1000_households ?? 0));
    const max = Math.max(1, ...values);
    if (map.getLayer('density-fill')) {
      (map.getSource('density') as any).setData(density);
    } else {
      showGeoJSON(map, 'density', density, '#c0392b', 0.7);
      map.setPaintProperty('density-fill', 'fill-color', ['interpolate', ['linear'], ['get', 'cases_per_1000_households'], 0, '#fee5d9', max / 2, '#fb6a4a', max, '#a50f15']);
    }
    // A colour scale with its ends and what it measures.
    fill(legend, h('span', { class: 'caption' }, t('assess.density_unit')),
      h('span', { class: 'ramp' }, h('i', { style: 'background: linear-gradient(to right, #fee5d9, #fb6a4a, #a50f15)' }),
        h('span', { class: 'ends' }, h('span', {}, '0'), h('span', {}, (max / 2).toFixed(1)), h('span', {}, max.toFixed(1)))));
    zoomTo(map, bboxOf({ type: 'GeometryCollection', geometries: density.features.map((f: GeoJSON.Feature) => f.geometry) }), 12);
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load().catch((err) => toast(describe(err), 'error')); });
  csv.addEventListener('click', async () => {
    // For people: the user's language, names beside codes, a BOM for Excel.
    const r = await fetch(`/v1/assessment${period()}&format=csv&lang=${lang()}`, { headers: { authorization: `Bearer ${token()}`, 'accept-language': lang() === 'en' ? 'en' : 'zh-CN' } });
    if (!r.ok) return toast(t('problem.other'), 'error');
    const url = URL.createObjectURL(await r.blob());
    const a = h('a', { href: url, download: `assessment-${from.value}-${to.value}.csv` });
    a.click();
    URL.revokeObjectURL(url);
  });
  await load();
  return () => {
    map.remove();
  };
}
