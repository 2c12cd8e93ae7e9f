// The public map (Art. 6): find your grid by search or by tapping your home, see its
// card (name, scope, members and contacts, supervision phone), and report a problem
// there. A report is filed exactly where its pin stands: the pin starts at the tapped
// place, or at a point the service guarantees lies inside the chosen grid (never the
// centre of a box, which can lie in the neighbour), and the grid the form shows is the
// grid the pin is in, which the service checks again before filing.

import { h, fill, toast, chinaDay, legend } from '../dom';
import { t, limitText } from '../i18n';
import { get, post, query, ApiProblem, describe } from '../api';
import { createMap, hoverGrids, showGeoJSON, gridTiles, maplibregl } from '../map';
import { followLink } from './follow';
import type { Cleanup } from '../main';

interface Card {
  grid: { code: string; name: string | null; layer: string };
  ancestors: { level: string; code: string; name: string | null }[];
  scope: GeoJSON.Geometry;
  members: { name: string; role: string; phone: string | null }[];
  supervision_phone: string | null;
  /** A point inside the grid that the lookup answers with it. */
  point: [number, number] | null;
}

interface Hit { code: string; name: string | null; kind: string; context: string[]; bbox: [number, number, number, number] | null }

interface Matter { code: string; name: string; public: boolean; time_limit: string }

interface Receipt {
  id: number;
  state: string;
  grid_code: string;
  grid_name: string | null;
  time_limit: { amount: number; unit: string } | null;
  follow_up_key: string;
}

const cardAt = (lon: number, lat: number) => get<Card>(`/v1/public/locate${query({ lon, lat, coord_sys: 'cgcs2000' })}`);

export async function publicPage(root: HTMLElement): Promise<Cleanup> {
  const side = h('aside', { class: 'side sheet' });
  const mapEl = h('div', { class: 'map', id: 'public-map' });
  fill(root, h('div', { class: 'split' }, side, mapEl));

  const input = h('input', { type: 'search', id: 'search', placeholder: t('search'), 'aria-label': t('search') });
  const results = h('ul', { class: 'hits' });
  const card = h('section', { class: 'card', id: 'card' }, h('p', { class: 'hint' }, t('card.hint')));
  const searchForm = h('form', { class: 'search' }, input, h('button', { type: 'submit' }, t('search.go')));
  // Grids as they were on a past date (the tiles' as_of); empty: today's.
  const asOf = h('input', { type: 'date', id: 'as-of', max: chinaDay() });
  fill(side, searchForm, card, results, h('label', { class: 'as-of' }, t('map.as_of'), asOf));

  mapEl.append(legend([
    ['#1f618d', t('legend.grid'), 'line'],
    ['#c0392b', t('legend.selected'), 'fill'],
    ['#4a4032', t('legend.county'), 'line'],
    ['#7a6f58', t('legend.township'), 'line'],
  ]));
  const map = await createMap(mapEl, { name: 'public' });
  hoverGrids(map);
  // The place the resident tapped, and the grid it lies in.
  let tapped: { at: [number, number]; grid: string } | null = null;
  let selected: string | undefined;
  // While a report form is open, taps move its pin instead of opening cards.
  let pinMoved: ((at: [number, number]) => void) | null = null;
  let pin: maplibregl.Marker | null = null;
  const dropPin = () => {
    pin?.remove();
    pin = null;
    pinMoved = null;
  };

  // Centres the map on a point in the part the sheet leaves uncovered (on phones the
  // card and form cover the lower half of the map).
  const sheetHeight = () => (getComputedStyle(side).position === 'absolute' ? side.offsetHeight : 0);
  const centre = (p: [number, number], zoom?: number) => {
    map.easeTo({ center: p, zoom, padding: { top: 0, bottom: sheetHeight(), left: 0, right: 0 }, duration: 0 });
  };

  const fit = (b: [number, number, number, number] | null) => {
    if (!b) return;
    const sheet = sheetHeight();
    map.fitBounds(b, { padding: { top: 30, left: 30, right: 30, bottom: sheet + 30 }, maxZoom: 16, duration: 0 });
  };

  const select = (code: string | undefined) => {
    if (selected) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: selected }, { selected: false });
    selected = code;
    if (code) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: code }, { selected: true });
  };

  const clearCard = (hint = t('card.hint')) => {
    dropPin();
    select(undefined);
    showGeoJSON(map, 'selected', { type: 'FeatureCollection', features: [] }, '#c0392b', 0.0);
    fill(card, h('p', { class: 'hint' }, hint));
  };

  const showCard = (c: Card) => {
    dropPin();
    select(c.grid.code);
    showGeoJSON(map, 'selected', { type: 'Feature', geometry: c.scope, properties: {} }, '#c0392b', 0.0);
    const back = results.childElementCount && results.hidden
      ? h('button', { class: 'link back', onclick: () => { results.hidden = false; results.scrollIntoView({ block: 'nearest' }); } }, `${t('search.back')}（${results.childElementCount}）`)
      : null;
    fill(
      card,
      back,
      h('h2', { 'data-code': c.grid.code }, c.grid.name ?? c.grid.code),
      h('p', { class: 'code' }, c.grid.code),
      h('p', {}, t('card.ancestors'), '：', c.ancestors.map((a) => a.name ?? a.code).reverse().join(' · ')),
      h('h3', {}, t('card.members')),
      c.members.length
        ? h('ul', { class: 'members' }, c.members.map((m) => h('li', {}, h('span', { class: 'role' }, t(`role.${m.role}`)), ' ', m.name, ' ', m.phone ? h('a', { href: `tel:${m.phone}` }, m.phone) : null)))
        : h('p', {}, t('card.none')),
      h('p', { class: 'supervision' }, t('card.supervision'), '：', c.supervision_phone ? h('a', { href: `tel:${c.supervision_phone}` }, c.supervision_phone) : '—'),
      h('button', { id: 'report-here', class: 'primary', onclick: () => reportForm(c) }, t('card.report')),
    );
    card.scrollIntoView({ block: 'nearest' });
  };

  const locate = async (lon: number, lat: number) => {
    showGeoJSON(map, 'clicked', { type: 'Point', coordinates: [lon, lat] }, '#e67e22');
    try {
      const c = await cardAt(lon, lat);
      tapped = { at: [lon, lat], grid: c.grid.code };
      results.hidden = true;
      showCard(c);
    } catch (err) {
      tapped = null;
      clearCard((err as ApiProblem).status === 404 ? t('card.outside') : describe(err));
    }
  };

  map.on('click', (e) => {
    const at: [number, number] = [e.lngLat.lng, e.lngLat.lat];
    if (pinMoved) pinMoved(at);
    else void locate(...at);
  });
  asOf.addEventListener('change', () => {
    const src = map.getSource('grids') as maplibregl.VectorTileSource | undefined;
    src?.setTiles([gridTiles(asOf.value || undefined)]);
  });

  const open = async (hit: Hit) => {
    // A grid opened from the results has not been tapped: its pin starts inside it.
    tapped = null;
    showGeoJSON(map, 'clicked', { type: 'FeatureCollection', features: [] }, '#e67e22');
    if (hit.kind !== 'grid') {
      clearCard();
      fit(hit.bbox);
      return;
    }
    try {
      const c = await get<Card>(`/v1/public/grids/${hit.code}`);
      results.hidden = true;
      showCard(c);
      fit(hit.bbox);
    } catch (err) {
      toast(describe(err), 'error');
    }
  };

  searchForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    try {
      const hits = await get<Hit[]>(`/v1/public/search${query({ q })}`);
      results.hidden = false;
      fill(results, hits.length ? hits.map((hit) => h('li', {},
        h('button', { class: 'link', onclick: () => open(hit) }, `${hit.name ?? hit.code}`),
        h('small', {}, ` ${t(`level.${hit.kind}`)} · ${hit.context.join(' · ')} · ${hit.code}`),
      )) : h('li', {}, t('search.none')));
      if (hits.length === 1) await open(hits[0]);
      else results.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      toast(describe(err), 'error');
    }
  });

  const reportForm = async (c: Card) => {
    // The pin starts where the resident tapped inside this grid, else inside the grid.
    const start = tapped && tapped.grid === c.grid.code ? tapped.at : c.point;
    if (!start) return toast(t('report.pick'), 'error');
    const list = await get<{ categories: { matters: Matter[] }[] }>('/v1/public/matters');
    const matters = list.categories.flatMap((cat) => cat.matters).filter((m) => m.public);
    const matter = h('select', { name: 'matter', id: 'report-matter' },
      h('option', { value: '' }, t('report.matter.unknown')),
      matters.map((m) => h('option', { value: m.code }, `${m.name}（${limitText(m.time_limit)}）`)));
    const description = h('textarea', { name: 'description', id: 'report-description', required: true, rows: 4 });
    const address = h('input', { name: 'address' });
    const name = h('input', { name: 'name', autocomplete: 'name' });
    const phone = h('input', { name: 'phone', type: 'tel', autocomplete: 'tel' });
    const where = h('p', { id: 'report-where', class: 'where' });
    const send = h('button', { type: 'submit', class: 'primary' }, t('report.send'));
    const mine = h('button', { type: 'button', class: 'secondary', id: 'report-locate-me' }, t('report.locate_me'));

    // Where the pin is, and the grid it is in (none: the form cannot be sent).
    let at: [number, number] = start;
    let grid: { code: string; name: string | null } | null = c.grid;
    const show = () => {
      where.dataset.grid = grid?.code ?? '';
      where.dataset.lon = String(at[0]);
      where.dataset.lat = String(at[1]);
      fill(where, `${t('report.where')}：`,
        grid ? h('strong', {}, grid.name ?? grid.code) : h('span', { class: 'warn' }, t('report.outside')),
        grid ? ` ${grid.code}` : null,
        h('small', {}, ` (${at[0].toFixed(5)}, ${at[1].toFixed(5)})`));
      send.disabled = !grid;
    };
    let asked = 0;
    const moveTo = async (p: [number, number]) => {
      at = p;
      pin?.setLngLat(p);
      const mine = ++asked;
      grid = null;
      send.disabled = true;
      try {
        const found = await cardAt(p[0], p[1]);
        if (mine !== asked) return;
        grid = found.grid;
        select(found.grid.code);
      } catch (err) {
        if (mine !== asked) return;
        if ((err as ApiProblem).status !== 404) toast(describe(err), 'error');
        select(undefined);
      }
      show();
    };

    dropPin();
    const marker = new maplibregl.Marker({ color: '#c0392b', draggable: true }).setLngLat(start).addTo(map);
    marker.getElement().id = 'report-pin';
    marker.on('dragend', () => {
      const p = marker.getLngLat();
      void moveTo([p.lng, p.lat]);
    });
    pin = marker;
    pinMoved = (p) => void moveTo(p);
    centre(start);
    show();

    mine.addEventListener('click', () => {
      if (!navigator.geolocation) return toast(t('report.no_location'), 'error');
      navigator.geolocation.getCurrentPosition(
        (pos) => {
          const p: [number, number] = [pos.coords.longitude, pos.coords.latitude];
          centre(p, Math.max(map.getZoom(), 15));
          void moveTo(p);
        },
        () => toast(t('report.no_location'), 'error'),
        { enableHighAccuracy: true, timeout: 10000 },
      );
    });

    const form = h('form', { class: 'report', id: 'report-form' },
      h('h2', {}, t('report.title')),
      where,
      h('p', { class: 'hint' }, t('report.pin'), ' ', mine),
      h('label', {}, t('report.matter'), matter),
      h('label', {}, t('report.description'), description),
      h('label', {}, t('report.address'), address),
      h('label', {}, t('report.name'), name),
      h('label', {}, t('report.phone'), phone),
      h('div', { class: 'buttons' }, send, h('button', { type: 'button', class: 'secondary', onclick: () => showCard(c) }, t('cancel'))),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!grid) return;
      send.disabled = true;
      try {
        const r = await post<Receipt>('/v1/public/reports', {
          lon: at[0], lat: at[1], coord_sys: 'cgcs2000',
          grid: grid.code,
          matter: matter.value || undefined,
          description: description.value,
          address: address.value || undefined,
          contact: { name: name.value || undefined, phone: phone.value || undefined },
        });
        dropPin();
        fill(card, receipt(r));
        card.scrollIntoView({ block: 'nearest' });
      } catch (err) {
        if ((err as ApiProblem).type === 'urn:wangge:problem:grid-mismatch') {
          // The boundaries changed since the pin was placed: show the grid it is in now.
          await moveTo(at);
          toast(t('report.moved'), 'error');
        } else {
          send.disabled = false;
          toast(describe(err), 'error');
        }
      }
    });
    fill(card, form);
    card.scrollIntoView({ block: 'nearest' });
    description.focus({ preventScroll: true });
  };

  return () => {
    dropPin();
    map.remove();
  };
}

/** What a resident keeps of their report: number, status, time limit, key and link. */
function receipt(r: Receipt): HTMLElement {
  return h('div', { class: 'sent', id: 'report-sent', 'data-case': r.id },
    h('h2', {}, `${t('report.received')} ${r.id}`),
    h('dl', {},
      h('dt', {}, t('report.status')), h('dd', { 'data-state': r.state }, t(`state.${r.state}`)),
      h('dt', {}, t('follow.grid')), h('dd', {}, `${r.grid_name ?? r.grid_code}`),
      h('dt', {}, t('report.limit')), h('dd', {}, limitText(r.time_limit), r.time_limit ? t('report.limit.after') : null),
      h('dt', {}, t('report.key')), h('dd', { class: 'key', id: 'report-key' }, r.follow_up_key),
    ),
    h('p', { class: 'hint' }, t('report.keep')),
    h('a', { href: followLink(r.id, r.follow_up_key), id: 'report-follow', class: 'button' }, t('report.follow')),
  );
}

export { maplibregl };
