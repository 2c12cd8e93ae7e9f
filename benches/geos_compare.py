#!/usr/bin/env python3
"""Runs the same synthetic partition and points through wangge and through GEOS
(shapely 2: STRtree + prepared polygons for lookups, coverage_invalid_edges for
validation) and prints the ratios. Needs `pip install shapely`, /usr/bin/time (Debian's
`time`) and a release build:

    cargo build --release && python3 benches/geos_compare.py [GRIDS]

Both sides are timed on the same machine in the same run. The lookup and validation
figures exclude file parsing (wangge's --stats reports build/locate/validate times
separately); the last pair is each whole process, file to findings, with its peak
memory."""
import json, math, os, random, subprocess, sys, tempfile, time
import numpy as np
import shapely
from shapely.geometry import shape

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
exe = os.path.join(root, "target", "release", "wangge")
side = math.sqrt(n)
x0, y0, x1, y1 = 117.5, 37.0, 117.5 + 0.006 * side, 37.0 + 0.0045 * side
tmp = tempfile.mkdtemp()
grids = os.path.join(tmp, "grids.geojson")
subprocess.run([exe, "synth", "--rect", f"{x0},{y0},{x1},{y1}", "--cells", str(n), "--densify", "11",
                "--seed", "42", "-o", grids], check=True)
rng = random.Random(7)
pts = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(1_000_000)]
csv = os.path.join(tmp, "points.csv")
with open(csv, "w") as f:
    f.write("lon,lat\n" + "".join(f"{x},{y}\n" for x, y in pts))

geoms = [shape(ft["geometry"]) for ft in json.load(open(grids))["features"]]
vertices = sum(shapely.get_num_coordinates(g) for g in geoms)
print(f"{len(geoms)} grids, {vertices} vertices, {len(pts)} points")

# GEOS lookups: STRtree over the grids, prepared polygons, one query for all points.
arr = np.array(geoms, dtype=object)
t = time.perf_counter()
shapely.prepare(arr)
tree = shapely.STRtree(arr)
build = time.perf_counter() - t
points = shapely.points(np.array(pts))
t = time.perf_counter()
tree.query(points, predicate="within")
geos_locate = time.perf_counter() - t
print(f"GEOS   locate: {len(pts) / geos_locate / 1e6:.2f} M points/s (build {build * 1e3:.0f} ms)")

out = subprocess.run([exe, "locate", "--grids", grids, "--points", csv, "--stats"],
                     check=True, capture_output=True, text=True)
s = json.loads(out.stderr.strip().splitlines()[-1])
print(f"wangge locate: {s['points_per_s'] / 1e6:.2f} M points/s with near-boundary flags "
      f"(build {s['build_ms']:.0f} ms incl. parsing)  ratio {s['points_per_s'] * geos_locate / len(pts):.1f}x")
# The index against the coordinates themselves (16 bytes per coordinate as the file
# lists them, each ring's closing one included).
raw = vertices * 16
print(f"wangge index: {s['index_bytes'] / 1e6:.0f} MB, {s['index_bytes'] / raw:.2f}x the raw "
      f"coordinates ({raw / 1e6:.0f} MB)")

# Validation: GEOS's coverage validator (edges only) on the plan.
t = time.perf_counter()
shapely.coverage_invalid_edges(arr)
geos_validate = time.perf_counter() - t
out = subprocess.run([exe, "validate", grids, "--stats", "--min-area-m2", "0"], capture_output=True, text=True)
s = json.loads(out.stderr.strip().splitlines()[-1])
print(f"GEOS   coverage_invalid_edges: {geos_validate * 1e3:.0f} ms")
print(f"wangge validate: {s['validate_ms']:.0f} ms  ratio {geos_validate * 1e3 / s['validate_ms']:.1f}x")

# Whole process, file to findings: GEOS's own GeoJSON reader (shapely.from_geojson)
# and CoverageValidator in a fresh Python against `wangge validate`, each timed from
# start to exit with its peak resident memory.
# /usr/bin/time reports for a child of its own: a child of this Python would count
# the Python's memory, which it shares until exec, in its peak.
def run(argv):
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"{argv[0]} failed: {p.stderr}")
    seconds, kb = p.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb) / 1024

geos_pipeline = ("import shapely, sys; g = shapely.from_geojson(open(sys.argv[1]).read()); "
                 "shapely.coverage_invalid_edges(shapely.get_parts(g))")
geos_s, geos_mb = run([sys.executable, "-c", geos_pipeline, grids])
ours_s, ours_mb = run([exe, "validate", grids, "--min-area-m2", "0"])
size_mb = os.path.getsize(grids) / 2**20
print(f"GEOS   read + validate, whole process: {geos_s:.2f} s, peak {geos_mb:.0f} MB ({size_mb:.0f} MB file)")
print(f"wangge validate, whole process: {ours_s:.2f} s, peak {ours_mb:.0f} MB  ratio {geos_s / ours_s:.1f}x")
