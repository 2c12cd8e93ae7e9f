// The map every page shares: no internet basemap assumed, the region hierarchy drawn as
// its own context from wangge's vector tiles; a configured basemap (e.g. Tianditu) under it.

import maplibregl, { type StyleSpecification, type LayerSpecification } from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';
import { get } from './api';
import { exposeMap, mark } from './hooks';

export interface MapConfig {
  bounds: [number, number, number, number];
  basemap: { tiles: string[]; attribution: string } | null;
}

let config: Promise<MapConfig> | undefined;
export function mapConfig(): Promise<MapConfig> {
  config ??= get<MapConfig>('/v1/public/map-config');
  return config;
}

const tiles = (layer: string, asOf?: string) =>
  `${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt${asOf ? `?as_of=${asOf}` : ''}`;

/** The grids' tile URL, today's or as of a past date. */
export const gridTiles = (asOf?: string) => tiles('grids', asOf);

/** Grids appear from this zoom on (below it a tile would hold thousands). */
export const GRID_MIN_ZOOM = 9;

export function baseStyle(cfg: MapConfig, opts: { grids?: boolean; asOf?: string } = {}): StyleSpecification {
  const sources: StyleSpecification['sources'] = {};
  const layers: LayerSpecification[] = [{ id: 'background', type: 'background', paint: { 'background-color': '#f3f1ea' } }];
  if (cfg.basemap) {
    sources.basemap = { type: 'raster', tiles: cfg.basemap.tiles, tileSize: 256, attribution: cfg.basemap.attribution };
    layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
  }
  for (const l of ['counties', 'townships', 'communities']) {
    sources[l] = { type: 'vector', tiles: [tiles(l)], minzoom: 0, maxzoom: 16, attribution: '© wangge · 边界：DataV.GeoAtlas / 合成' };
  }
  layers.push(
    { id: 'counties-fill', type: 'fill', source: 'counties', 'source-layer': 'counties', paint: { 'fill-color': '#e6dfcc', 'fill-opacity': 0.6 } },
    { id: 'communities-line', type: 'line', source: 'communities', 'source-layer': 'communities', minzoom: 10, paint: { 'line-color': '#9a8f78', 'line-width': 0.8, 'line-dasharray': [2, 2] } },
    { id: 'townships-line', type: 'line', source: 'townships', 'source-layer': 'townships', paint: { 'line-color': '#7a6f58', 'line-width': ['interpolate', ['linear'], ['zoom'], 7, 0.5, 12, 1.6] } },
    { id: 'counties-line', type: 'line', source: 'counties', 'source-layer': 'counties', paint: { 'line-color': '#4a4032', 'line-width': ['interpolate', ['linear'], ['zoom'], 7, 1.2, 12, 3] } },
  );
  if (opts.grids !== false) {
    sources.grids = { type: 'vector', tiles: [tiles('grids', opts.asOf)], minzoom: GRID_MIN_ZOOM, maxzoom: 16, promoteId: 'code' };
    layers.push(
      {
        id: 'grids-fill', type: 'fill', source: 'grids', 'source-layer': 'grids', minzoom: GRID_MIN_ZOOM,
        paint: {
          'fill-color': ['case', ['boolean', ['feature-state', 'selected'], false], '#c0392b', '#2e86c1'],
          'fill-opacity': ['case', ['boolean', ['feature-state', 'selected'], false], 0.35, ['boolean', ['feature-state', 'hover'], false], 0.25, 0.08],
        },
      },
      { id: 'grids-line', type: 'line', source: 'grids', 'source-layer': 'grids', minzoom: GRID_MIN_ZOOM, paint: { 'line-color': '#1f618d', 'line-width': ['interpolate', ['linear'], ['zoom'], 9, 0.3, 14, 1.5] } },
    );
  }
  layers.push(...labels(opts.grids !== false));
  // No `glyphs`: MapLibre (≥ 5.11) draws every label with the device's own fonts
  // (TinySDF), CJK included, so no glyph server or CDN is needed on a closed network.
  return { version: 8, sources, layers };
}

/** Labels from the tiles' `name`: counties when the city is in view, then townships,
 * communities and, zoomed in, grids (names may repeat, so grids show their code too). */
function labels(grids: boolean): LayerSpecification[] {
  const label = (id: string, source: string, minzoom: number, maxzoom: number, size: number, colour: string, field: unknown = ['get', 'name']): LayerSpecification => ({
    id: `${id}-label`, type: 'symbol', source, 'source-layer': source, minzoom, maxzoom,
    layout: { 'text-field': field as never, 'text-font': ['sans-serif'], 'text-size': size, 'text-max-width': 8, 'text-padding': 4 },
    paint: { 'text-color': colour, 'text-halo-color': 'rgba(255,255,255,0.9)', 'text-halo-width': 1.5 },
  });
  const out = [
    label('counties', 'counties', 0, 10, 15, '#3b3325'),
    label('townships', 'townships', 9, 12.5, 13, '#4a4032'),
    label('communities', 'communities', 11.5, 14.5, 12, '#6b5f48'),
  ];
  if (grids) out.push(label('grids', 'grids', 14, 24, 11, '#1f4e6f', ['format', ['coalesce', ['get', 'name'], ['get', 'code']], {}, '\n', {}, ['get', 'code'], { 'font-scale': 0.8 }]));
  return out;
}

/**
 * A map in `container` showing the configured area; resolves once the style is in.
 * `name` exposes it to scripts (`window.wangge.maps[name]`) and records when it first
 * finished drawing (`window.wangge.timings[name + 'Idle']`).
 */
export async function createMap(container: HTMLElement, opts: { name: string; grids?: boolean; asOf?: string }): Promise<maplibregl.Map> {
  const cfg = await mapConfig();
  const map = new maplibregl.Map({
    container,
    style: baseStyle(cfg, opts),
    bounds: cfg.bounds,
    fitBoundsOptions: { padding: 20 },
    // A phone's third device pixel costs more than twice the drawing (WebGL in software
    // on many municipal PCs and cheap phones) for lines and labels no one can tell apart.
    pixelRatio: Math.min(window.devicePixelRatio || 1, 2),
    attributionControl: { compact: true },
  });
  exposeMap(opts.name, map);
  map.once('idle', () => mark(`${opts.name}Idle`));
  // Only while it is still the map by that name (a newer one may have taken it).
  map.on('remove', () => { if (window.wangge.maps[opts.name] === map) exposeMap(opts.name, undefined); });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  await new Promise<void>((resolve) => (map.loaded() ? resolve() : map.once('load', () => resolve())));
  return map;
}

/** Hover highlight on the grids layer. */
export function hoverGrids(map: maplibregl.Map): void {
  let hovered: string | number | undefined;
  map.on('mousemove', 'grids-fill', (e) => {
    const f = e.features?.[0];
    if (hovered !== undefined) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: hovered }, { hover: false });
    hovered = f?.id;
    if (hovered !== undefined) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: hovered }, { hover: true });
    map.getCanvas().style.cursor = 'pointer';
  });
  map.on('mouseleave', 'grids-fill', () => {
    if (hovered !== undefined) map.setFeatureState({ source: 'grids', sourceLayer: 'grids', id: hovered }, { hover: false });
    hovered = undefined;
    map.getCanvas().style.cursor = '';
  });
}

/** A GeoJSON source with fill + outline (+ points as circles), replaced on each call. */
export function showGeoJSON(map: maplibregl.Map, id: string, data: GeoJSON.GeoJSON, color: string, fillOpacity = 0.25): void {
  const src = map.getSource(id) as maplibregl.GeoJSONSource | undefined;
  if (src) {
    src.setData(data);
    return;
  }
  map.addSource(id, { type: 'geojson', data });
  map.addLayer({ id: `${id}-fill`, type: 'fill', source: id, filter: ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false], paint: { 'fill-color': color, 'fill-opacity': fillOpacity } });
  map.addLayer({ id: `${id}-line`, type: 'line', source: id, filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], false, true], paint: { 'line-color': color, 'line-width': 2 } });
  map.addLayer({ id: `${id}-point`, type: 'circle', source: id, filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false], paint: { 'circle-color': color, 'circle-radius': 7, 'circle-stroke-color': '#fff', 'circle-stroke-width': 2 } });
}

/** The lon/lat box of any GeoJSON geometry. */
export function bboxOf(g: GeoJSON.Geometry | null | undefined): [number, number, number, number] | null {
  if (!g) return null;
  let b: [number, number, number, number] = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c: any): void => {
    if (typeof c[0] === 'number') {
      b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])];
    } else c.forEach(walk);
  };
  if ('coordinates' in g) walk(g.coordinates);
  else if (g.type === 'GeometryCollection') g.geometries.forEach((x: GeoJSON.Geometry) => { const bb = bboxOf(x); if (bb) walk([[bb[0], bb[1]], [bb[2], bb[3]]]); });
  return Number.isFinite(b[0]) ? b : null;
}

export function zoomTo(map: maplibregl.Map, b: [number, number, number, number] | null, maxZoom = 16): void {
  if (b) map.fitBounds(b, { padding: 60, maxZoom, duration: 0 });
}

export { maplibregl };
