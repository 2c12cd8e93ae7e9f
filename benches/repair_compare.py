#!/usr/bin/env python3
"""Repairs the same dirty partition with `wangge repair` and with GEOS's CoverageCleaner
(shapely 2.2 `coverage_clean`, GEOS >= 3.14) in one run, and judges both results the
same way: GEOS's `coverage_invalid_edges`, overlap and gap area, invalid polygons, how
much area each repair moved, and the time it took. Needs shapely >= 2.2 (its wheels
bundle GEOS 3.14) and a release build:

    cargo build --release
    python3 benches/repair_compare.py ../shared/data/real/taiwan_villages.geojson VILLAGESN

Arguments: GRIDS [ID_FIELD] [SNAP_M] [MAX_GAP_WIDTH_M]. With PARENT=FILE in the
environment, wangge repairs (and validates) against that parent boundary; GEOS's
cleaner has no parent, so its side is cleaned without one and validated against it.
maup's smart_repair runs as a third side where maup is installed (MAUP=0 skips it: it
takes minutes on the Taiwan file). Both sides get the same snap
distance and gap width, converted to degrees at the north-south scale for GEOS (which
works in coordinate units, one distance for both axes: east-west it is cos(latitude)
shorter). The widths are measured differently: GEOS takes the diameter of
a gap's largest inscribed circle, wangge its mean width (2 x area / perimeter), so GEOS
leaves slivers at the same figure that wangge's validator calls edge mismatches; GEOS
then runs again at the smallest doubling of the width that leaves none (a "GEOS@2m" row),
for moves on equal terms. GEOS's time is its cleaner alone on geometries in memory;
wangge's is shown for the whole process and for the repair step alone; every time is
the median of RUNS runs (default 3). Areas are
in m² on a local equirectangular projection at the data's mean latitude, the same for
both sides. PostGIS's ST_CoverageClean is the same GEOS cleaner (PostGIS >= 3.6 built
on GEOS >= 3.14)."""
import json, math, os, subprocess, sys, tempfile, time
import numpy as np
import shapely
from shapely.geometry import shape, mapping

if len(sys.argv) < 2:
    sys.exit(__doc__)
path = sys.argv[1]
id_field = sys.argv[2] if len(sys.argv) > 2 else "grid_id"
snap_m = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
gap_m = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
exe = os.environ.get("WANGGE", os.path.join(root, "target", "release", "wangge"))
parent = os.environ.get("PARENT")
with_parent = ["--parent", parent] if parent else []

features = json.load(open(path))["features"]
ids = [str(f["properties"].get(id_field, i)) for i, f in enumerate(features)]
before = np.array([shape(f["geometry"]) for f in features], dtype=object)
lat = float(np.mean([g.centroid.y for g in before]))
kx, ky = 111_320.0 * math.cos(math.radians(lat)), 110_574.0
metres = lambda g: shapely.transform(g, lambda c: c * np.array([kx, ky]))


def area_m2(geoms):
    return shapely.area(metres(np.asarray(geoms, dtype=object)))


def judge(name, after, seconds):
    after = np.asarray(after, dtype=object)
    invalid_edges = shapely.coverage_invalid_edges(after)
    bad_edges = int(np.sum(~shapely.is_empty(invalid_edges)))
    invalid = int(np.sum(~shapely.is_valid(after)))
    valid_after = shapely.make_valid(after)
    union = shapely.union_all(metres(valid_after))
    total = float(np.sum(area_m2(valid_after)))
    overlap = total - union.area
    holes = sum(shapely.Polygon(r).area for p in getattr(union, "geoms", [union]) for r in p.interiors)
    moved = float(np.sum(area_m2(shapely.symmetric_difference(shapely.make_valid(before), valid_after))))
    print(f"{name:>7}: {seconds:7.2f} s  polygons with invalid edges (GEOS) {bad_edges:5d}  "
          f"invalid {invalid:3d}  overlap {overlap:12.1f} m²  holes {holes:14.1f} m²  "
          f"area moved {moved:12.1f} m²")


print(f"{len(features)} polygons, {int(np.sum(shapely.get_num_coordinates(before)))} vertices; "
      f"snap {snap_m} m, gaps under {gap_m} m; GEOS {'.'.join(map(str, shapely.geos_version))}")
judge("input", before, 0.0)

tmp = tempfile.mkdtemp()


def wangge_errors(geoms, name):
    """The error kinds `wangge validate` finds in a result, by count."""
    f = os.path.join(tmp, name + ".geojson")
    json.dump({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {id_field: i}, "geometry": mapping(g)}
        for i, g in zip(ids, geoms)]}, open(f, "w"))
    v = subprocess.run([exe, "validate", f, "--id-field", id_field, "--json"] + with_parent,
                       capture_output=True, text=True)
    try:
        kinds = {}
        for p in json.loads(v.stdout).get("problems", []):
            if p.get("severity", "error") == "error":
                kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
        return kinds
    except json.JSONDecodeError:
        return {"unreadable report": v.stdout[-300:] + v.stderr[-300:]}


deg = snap_m / ky
RUNS = int(os.environ.get("RUNS", "3"))


def geos_clean(width_m):
    """GEOS's cleaner at a gap width: its result and its median time over RUNS runs."""
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        result = shapely.coverage_clean(before, gap_width=width_m / ky, snapping_distance=deg)
        times.append(time.perf_counter() - t)
    return result, float(np.median(times))


geos, seconds = geos_clean(gap_m)
judge("GEOS", geos, seconds)
geos_errors = wangge_errors(geos, "geos")
# GEOS measures a gap by its largest inscribed circle, wangge by its mean width, so at
# the same figure GEOS leaves slivers that wangge calls edge mismatches and fills. For
# moves on equal terms GEOS also runs at the smallest doubling of the width that leaves
# none of them (not against a parent: GEOS's cleaner has none, so its mismatches with the
# parent's edges stay at any width).
wider, wider_errors = gap_m, geos_errors
while not parent and "edge_mismatch" in wider_errors and wider < 16 * gap_m:
    wider *= 2
    geos_wider, seconds = geos_clean(wider)
    judge(f"GEOS@{wider:g}m", geos_wider, seconds)
    wider_errors = wangge_errors(geos_wider, f"geos{wider:g}")

# maup's smart_repair (where installed): its own snapping (a 10^-9 grid of the extent)
# and gap rule (gaps under 10 % of the largest neighbour's area), so its moves are not
# on the same terms; shown for what it leaves.
os.environ.setdefault("TQDM_DISABLE", "1")  # maup's progress bars
try:
    if os.environ.get("MAUP") == "0":
        raise ImportError
    import geopandas
    from maup import smart_repair
    t = time.perf_counter()
    repaired_maup = smart_repair(geopandas.GeoSeries(list(before)))
    judge("maup", list(repaired_maup), time.perf_counter() - t)
except ImportError:
    print("   maup: skipped (MAUP=0) or not installed (pip install maup)")
except Exception as e:  # maup raises on some inputs; say so rather than stop
    print(f"   maup: failed: {type(e).__name__}: {str(e)[:200]}")

out = os.path.join(tmp, "repaired.geojson")
runs = []
for _ in range(RUNS):
    t = time.perf_counter()
    run = subprocess.run([exe, "repair", path, "--id-field", id_field, "--snap-m", str(snap_m),
                          "--max-gap-width-m", str(gap_m), "-o", out, "--json"] + with_parent,
                         capture_output=True, text=True)
    if not os.path.exists(out):  # exit 1 only says problems remain (wide gaps); no file is a failure
        sys.exit("wangge repair wrote nothing: " + run.stderr[-500:])
    runs.append((time.perf_counter() - t, json.loads(run.stdout).get("timings", {})))
seconds = float(np.median([r[0] for r in runs]))
timings = {k: float(np.median([r[1].get(k, float("nan")) for r in runs]))
           for k in ("repair_ms", "read_ms", "validate_ms")}
repaired = {str(f["properties"].get(id_field, i)): shape(f["geometry"])
            for i, f in enumerate(json.load(open(out))["features"])}
judge("wangge", [repaired[i] for i in ids], seconds)
# GEOS's figure is its cleaner alone, on geometries already in memory: so is this one.
print(f"         wangge's repair step alone: {timings.get('repair_ms', float('nan')) / 1e3:.2f} s "
      f"(read {timings.get('read_ms', float('nan')) / 1e3:.2f} s, "
      f"validating its result {timings.get('validate_ms', float('nan')) / 1e3:.2f} s)")

# Each result under the other validator: GEOS's output through `wangge validate`.
print(f"{'GEOS':>7} under wangge validate: {geos_errors or 'no errors'}")
if wider != gap_m:
    print(f"{'GEOS@' + format(wider, 'g') + 'm':>7} under wangge validate: {wider_errors or 'no errors'}")
print(f"{'wangge':>7} under wangge validate: {wangge_errors([repaired[i] for i in ids], 'wangge') or 'no errors'}")
