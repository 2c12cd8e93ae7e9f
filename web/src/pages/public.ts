// The public map (Art. 6): find your grid by search or by clicking your home, see its
// card (name, scope, members and contacts, supervision phone), and report a problem there.

import { h, fill, toast, chinaDay } from '../dom';
import { t } from '../i18n';
import { get, post, query } from '../api';
import { createMap, hoverGrids, showGeoJSON, bboxOf, zoomTo, gridTiles, maplibregl } from '../map';
import type { Cleanup } from '../main';

interface Card {
  grid: { code: string; name: string | null; layer: string };
  ancestors: { level: string; code: string; name: string | null }[];
  scope: GeoJSON.Geometry;
  members: { name: string; role: string; phone: string | null }[];
  supervision_phone: string | null;
}

interface Hit { code: string; name: string | null; kind: string; context: string[]; bbox: [number, number, number, number] | null }

interface Matter { code: string; name: string; public: boolean; time_limit: string }

export async function publicPage(root: HTMLElement): Promise<Cleanup> {
  const side = h('aside', { class: 'side' });
  const mapEl = h('div', { class: 'map', id: 'public-map' });
  fill(root, h('div', { class: 'split' }, side, mapEl));

  const input = h('input', { type: 'search', id: 'search', placeholder: t('search'), 'aria-label': t('search') });
  const results = h('ul', { class: 'hits' });
  const card = h('section', { class: 'card', id: 'card' }, h('p', { class: 'hint' }, t('card.hint')));
  const searchForm = h('form', { class: 'search' }, input, h('button', { type: 'submit' }, t('search.go')));
  // Grids as they were on a past date (the tiles' as_of); empty: today's.
  const asOf = h('input', { type: 'date', id: 'as-of', max: chinaDay() });
  fill(side, searchForm, results, h('label', { class: 'as-of' }, t('map.as_of'), asOf), card);

  const map = await createMap(mapEl, { name: 'public' });
    hoverGrids(map);
  let clicked: [number, number] | null = null;
  let selected: string | undefined;

  const select = (code: string | undefined) => {
    if (selected) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: selected }, { selected: false });
    selected = code;
    if (code) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: code }, { selected: true });
  };

  const showCard = (c: Card) => {
    select(c.grid.code);
    showGeoJSON(map, 'selected', { type: 'Feature', geometry: c.scope, properties: {} }, '#c0392b', 0.0);
    fill(
      card,
      h('h2', { 'data-code': c.grid.code }, c.grid.name ?? c.grid.code),
      h('p', { class: 'code' }, c.grid.code),
      h('p', {}, t('card.ancestors'), '：', c.ancestors.map((a) => a.name ?? a.code).reverse().join(' · ')),
      h('h3', {}, t('card.members')),
      c.members.length
        ? h('ul', { class: 'members' }, c.members.map((m) => h('li', {}, h('span', { class: 'role' }, t(`role.${m.role}`)), ' ', m.name, ' ', m.phone ? h('a', { href: `tel:${m.phone}` }, m.phone) : null)))
        : h('p', {}, t('card.none')),
      h('p', { class: 'supervision' }, t('card.supervision'), '：', c.supervision_phone ? h('a', { href: `tel:${c.supervision_phone}` }, c.supervision_phone) : '—'),
      h('button', { id: 'report-here', onclick: () => reportForm(c) }, t('card.report')),
    );
  };

  const locate = async (lon: number, lat: number) => {
    clicked = [lon, lat];
    showGeoJSON(map, 'clicked', { type: 'Point', coordinates: [lon, lat] }, '#e67e22');
    try {
      showCard(await get<Card>(`/v1/public/locate${query({ lon, lat, coord_sys: 'cgcs2000' })}`));
    } catch (err) {
      select(undefined);
      fill(card, h('p', { class: 'hint' }, (err as any).status === 404 ? t('card.outside') : (err as Error).message));
    }
  };

  map.on('click', (e) => locate(e.lngLat.lng, e.lngLat.lat));
  asOf.addEventListener('change', () => {
    const src = map.getSource('grids') as maplibregl.VectorTileSource | undefined;
    src?.setTiles([gridTiles(asOf.value || undefined)]);
  });

  searchForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    try {
      const hits = await get<Hit[]>(`/v1/public/search${query({ q })}`);
      fill(results, hits.length ? hits.map((hit) => h('li', {},
        h('button', { class: 'link', onclick: async () => {
          zoomTo(map, hit.bbox);
          if (hit.kind === 'grid') showCard(await get<Card>(`/v1/public/grids/${hit.code}`));
        } }, `${hit.name ?? hit.code}`),
        h('small', {}, ` ${t(`level.${hit.kind}`)} · ${hit.context.join(' · ')} · ${hit.code}`),
      )) : h('li', {}, t('search.none')));
      if (hits.length === 1) (results.querySelector('button') as HTMLButtonElement).click();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  });

  const reportForm = async (c: Card) => {
    if (!clicked) {
      const b = bboxOf(c.scope);
      if (b) clicked = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
    }
    const where = clicked;
    if (!where) return toast(t('report.pick'), 'error');
    const list = await get<{ categories: { matters: Matter[] }[] }>('/v1/public/matters');
    const matters = list.categories.flatMap((cat) => cat.matters).filter((m) => m.public);
    const matter = h('select', { name: 'matter', id: 'report-matter' },
      h('option', { value: '' }, t('report.matter.unknown')),
      matters.map((m) => h('option', { value: m.code }, `${m.name}（${m.time_limit}）`)));
    const description = h('textarea', { name: 'description', id: 'report-description', required: true, rows: 4 });
    const address = h('input', { name: 'address' });
    const name = h('input', { name: 'name', autocomplete: 'name' });
    const phone = h('input', { name: 'phone', type: 'tel', autocomplete: 'tel' });
    const form = h('form', { class: 'report', id: 'report-form' },
      h('h2', {}, t('report.title')),
      h('p', {}, `${t('report.where')}：${c.grid.name ?? c.grid.code} (${where[0].toFixed(5)}, ${where[1].toFixed(5)})`),
      h('label', {}, t('report.matter'), matter),
      h('label', {}, t('report.description'), description),
      h('label', {}, t('report.address'), address),
      h('label', {}, t('report.name'), name),
      h('label', {}, t('report.phone'), phone),
      h('div', { class: 'buttons' }, h('button', { type: 'submit' }, t('report.send')), h('button', { type: 'button', class: 'secondary', onclick: () => showCard(c) }, t('cancel'))),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const r = await post<{ id: number; state: string }>('/v1/public/reports', {
          lon: where[0], lat: where[1], coord_sys: 'cgcs2000',
          matter: matter.value || undefined,
          description: description.value,
          address: address.value || undefined,
          contact: { name: name.value || undefined, phone: phone.value || undefined },
        });
        fill(card, h('p', { class: 'sent', id: 'report-sent', 'data-case': r.id }, `${t('report.sent')} ${r.id}（${t(`state.${r.state}`)}）`));
      } catch (err) {
        toast((err as Error).message, 'error');
      }
    });
    fill(card, form);
    description.focus();
  };

  return () => {
    map.remove();
  };
}

export { maplibregl };
