// What scripts and the browser tests may read of the running app: its maps and timings.

import type { Map } from 'maplibre-gl';

interface Hooks {
  maps: Record<string, Map>;
  /** Milliseconds from navigation start, e.g. `publicMapIdle`. */
  timings: Record<string, number>;
}

declare global {
  interface Window {
    wangge: Hooks;
  }
}

window.wangge ??= { maps: {}, timings: {} };

export function exposeMap(name: string, map: Map | undefined): void {
  if (map) window.wangge.maps[name] = map;
  else delete window.wangge.maps[name];
}

export function mark(name: string): void {
  window.wangge.timings[name] ??= Math.round(performance.now());
}
