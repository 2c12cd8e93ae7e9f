"""Drives a running wangge with the clients its users have: OWSLib, GDAL's OAPIF driver,
the OpenAPI validator, prometheus_client's parser and a strict XML parser (lxml).

    python conformance.py http://127.0.0.1:PORT

Prints one line per check and exits 1 if any failed (run by tests/api/clients.rs)."""

import json
import subprocess
import sys
import traceback

import requests
from lxml import etree
from openapi_spec_validator import validate
from owslib.ogcapi.features import Features
from prometheus_client.parser import text_string_to_metric_families

BASE = sys.argv[1].rstrip("/")
OGC = BASE + "/ogc"
FAILED = []


def check(name):
    def run(fn):
        try:
            fn()
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the next runs
            FAILED.append(name)
            print(f"FAIL {name}: {e!r}")
            traceback.print_exc(limit=3)
        return fn

    return run


def get(path, **kw):
    return requests.get(BASE + path, timeout=60, **kw)


def strict_xml(response):
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(response.content, parser)


def problem(response, status):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    return response.json()


# --- OpenAPI ---------------------------------------------------------------------


@check("the OpenAPI 3.1 document validates")
def _():
    doc = get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    validate(doc)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if isinstance(op, dict) and "operationId" in op]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for kind, content in op.get("requestBody", {}).get("content", {}).items():
                assert "schema" in content, f"{method} {path} {kind} has no schema"


@check("the OpenAPI 3.0 document validates")
def _():
    doc = get("/openapi-3.0.json").json()
    assert doc["openapi"].startswith("3.0"), doc["openapi"]
    validate(doc)


# --- OGC API - Features ----------------------------------------------------------------


@check("OWSLib reads the landing page, the API, conformance and collections")
def _():
    f = Features(OGC)  # OWSLib asks for /ogc/ with a trailing slash
    assert any(link["rel"] == "data" for link in f.links), f.links
    api = f.api()
    assert "/ogc/collections/{id}/items" in api["paths"], list(api["paths"])[:5]
    conf = f.conformance()["conformsTo"]
    assert any("queryables" in c for c in conf), conf
    ids = sorted(c["id"] for c in f.collections()["collections"])
    assert ids == ["communities", "counties", "grids", "townships"], ids
    for cid in ids:
        c = f.collection(cid)
        assert c["storageCrs"].endswith("/4490"), c


@check("OWSLib pages every county through the next links to numberMatched")
def _():
    f = Features(OGC)
    page = f.collection_items("counties", limit=2)
    matched, seen = page["numberMatched"], [x["id"] for x in page["features"]]
    nexts = [link for link in page["links"] if link["rel"] == "next"]
    while nexts:
        page = requests.get(nexts[0]["href"], timeout=60).json()
        seen += [x["id"] for x in page["features"]]
        nexts = [link for link in page["links"] if link["rel"] == "next"]
    assert matched == 7 and len(seen) == 7 and len(set(seen)) == 7, (matched, seen)


@check("queryables are a JSON Schema and each filters the items")
def _():
    f = Features(OGC)
    q = f.collection_queryables("grids")
    assert {"code", "community_code", "layer", "households"} <= set(q["properties"]), q
    community = f.collection_items("grids", limit=1)["features"][0]["properties"]["community_code"]
    page = f.collection_items("grids", limit=1000, community_code=community)
    assert 0 < page["numberMatched"] < 100, page["numberMatched"]
    assert all(x["properties"]["community_code"] == community for x in page["features"])


@check("an unknown query parameter is a 400 naming it")
def _():
    body = problem(get("/ogc/collections/grids/items", params={"communty_code": "1"}), 400)
    assert "communty_code" in body["detail"], body


@check("crs and bbox-crs take the short form EPSG:4490 (latitude first)")
def _():
    page = Features(OGC).collection_items("counties", limit=1, crs="http://www.opengis.net/def/crs/EPSG/0/4490")
    assert 35 < page["features"][0]["geometry"]["coordinates"][0][0][0][0] < 39, "OWSLib, latitude first"
    r = get("/ogc/collections/counties/items", params={"crs": "EPSG:4490", "limit": 1})
    assert r.status_code == 200, r.text
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    lat = r.json()["features"][0]["geometry"]["coordinates"][0][0][0][0]
    assert 35 < lat < 39, lat
    r = get("/ogc/collections/grids/items", params={"bbox": "37.35,117.9,37.45,118.0", "bbox-crs": "EPSG:4490"})
    assert r.status_code == 200 and r.json()["numberMatched"] > 0, r.text[:200]
    problem(get("/ogc/collections/grids/items", params={"bbox-crs": "EPSG:3857"}), 400)


@check("a datetime interval answers the versions in force at any time in it")
def _():
    now = get("/ogc/collections/grids/items").json()["numberMatched"]
    r = get("/ogc/collections/grids/items", params={"datetime": "2000-01-01T00:00:00Z/..", "limit": 5})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["numberMatched"] >= now, (page["numberMatched"], now)
    f = page["features"][0]
    assert "@" in f["id"] and f["properties"]["valid_from"], f["id"]
    one = get(f"/ogc/collections/grids/items/{f['id']}")
    assert one.status_code == 200 and one.json()["id"] == f["id"], one.text[:200]
    assert get("/ogc/collections/grids/items", params={"datetime": "../1999-12-31"}).json()["numberMatched"] == 0
    problem(get("/ogc/collections/grids/items", params={"datetime": "2026-02-01/2026-01-01"}), 400)


def ogr(*args):
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-800:]
    return out.stdout


@check("GDAL's OAPIF driver counts every feature of every collection, with and without a trailing slash, and with -spat")
def _():
    for collection in ("grids", "communities", "townships", "counties"):
        want = get(f"/ogc/collections/{collection}/items", params={"limit": 1}).json()["numberMatched"]
        for url in (f"OAPIF:{OGC}", f"OAPIF:{OGC}/"):
            text = ogr("ogrinfo", "-ro", "-so", url, collection)
            assert f"Feature Count: {want}" in text, (collection, url, text[-400:])
    want = get("/ogc/collections/grids/items", params={"bbox": "117.9,37.35,118.0,37.45"}).json()["numberMatched"]
    text = ogr("ogrinfo", "-ro", "-so", "-spat", "117.9", "37.35", "118.0", "37.45", f"OAPIF:{OGC}", "grids")
    count = int(text.split("Feature Count: ")[1].split()[0])
    assert count == want, (count, want)
    # ogr2ogr pages through a collection into a GeoPackage, every attribute kept.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/townships.gpkg"
        ogr("ogr2ogr", "-f", "GPKG", out, f"OAPIF:{OGC}/", "townships")
        text = ogr("ogrinfo", "-ro", "-so", out, "townships")
        assert "Feature Count: 57" in text and "parent_code" in text, text[-600:]


# --- Vector tiles ------------------------------------------------------------------


@check("TileJSON 3.0 per layer, linked from map-config and the landing page; .pbf is .mvt")
def _():
    config = get("/v1/public/map-config").json()
    assert config["tilejson"]["grids"] == "/tiles/grids.json", config
    landing = get("/ogc").json()
    assert any(link["href"].endswith("/tiles/grids.json") for link in landing["links"])
    tj = get("/tiles/grids.json").json()
    assert tj["tilejson"] == "3.0.0" and tj["vector_layers"][0]["id"] == "grids", tj
    assert "community" in tj["vector_layers"][0]["fields"]
    west, south, east, north = tj["bounds"]
    assert 117 < west < east < 119 and 36 < south < north < 39, tj["bounds"]
    template = tj["tiles"][0]
    assert template.startswith(BASE), template
    # The tile under the data's centre at zoom 12.
    import math

    lon, lat, z = tj["center"][0], tj["center"][1], 12
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    mvt = requests.get(template.format(z=z, x=x, y=y), timeout=60)
    pbf = requests.get(template.replace(".mvt", ".pbf").format(z=z, x=x, y=y), timeout=60)
    assert mvt.status_code == 200 and len(mvt.content) > 100, mvt.status_code
    assert pbf.content == mvt.content


# --- Open311 GeoReport v2 ----------------------------------------------------------


@check("Open311 in XML and JSON: discovery, services, a POST, requests, one request, errors")
def _():
    d = strict_xml(get("/open311/v2/discovery.xml"))
    assert d.tag == "discovery" and d.find("endpoints/endpoint/formats/format") is not None
    services = strict_xml(get("/open311/v2/services.xml"))
    assert services.tag == "services"
    codes = [s.findtext("service_code") for s in services.findall("service")]
    assert len(codes) >= 2, codes
    assert codes == [s["service_code"] for s in get("/open311/v2/services.json").json()]
    definition = strict_xml(get(f"/open311/v2/services/{codes[0]}.xml"))
    assert definition.tag == "service_definition", definition.tag
    form = {"service_code": codes[0], "lat": "37.3843", "long": "118.0196", "description": "路灯不亮 <&> \"灯\""}
    created = requests.post(BASE + "/open311/v2/requests.xml", data=form, timeout=60)
    assert created.status_code == 201, created.text
    made = strict_xml(created)
    assert made.tag == "service_requests", made.tag
    rid = made.findtext("request/service_request_id")
    assert rid and rid.isdigit(), etree.tostring(made)
    one = strict_xml(get(f"/open311/v2/requests/{rid}.xml"))
    assert one.findtext("request/service_request_id") == rid
    assert one.find("request/notes/note") is not None
    assert get(f"/open311/v2/requests/{rid}.json").json()[0]["service_request_id"] == rid
    listed = strict_xml(get("/open311/v2/requests.xml", params={"service_code": f"{codes[1]},{codes[0]}", "start_date": "2000-01-01"}))
    assert rid in [r.findtext("service_request_id") for r in listed.findall("request")]
    as_json = get("/open311/v2/requests.json", params={"service_code": f"{codes[1]},{codes[0]}", "start_date": "2000-01-01"}).json()
    assert rid in [r["service_request_id"] for r in as_json]
    missing = get("/open311/v2/requests/999999999.xml")
    assert missing.status_code == 404
    errors = strict_xml(missing)
    assert errors.tag == "errors" and errors.findtext("error/code") == "404", etree.tostring(errors)
    bad = get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400, bad.text
    bad = get("/open311/v2/requests.xml", params={"status": "bogus"})
    assert bad.status_code == 400 and strict_xml(bad).tag == "errors"
    wrong = requests.delete(BASE + "/open311/v2/requests.json", timeout=60)
    assert wrong.status_code == 405 and wrong.json()[0]["code"] == 405, wrong.text


# --- Errors everywhere, metrics ------------------------------------------------------


@check("a wrong method is a problem document that says which methods work")
def _():
    r = requests.delete(BASE + "/v1/locate", timeout=60)
    body = problem(r, 405)
    assert "DELETE" in body["detail"] and "GET" in r.headers["allow"], (body, r.headers)


@check("metrics parse, every family has HELP and TYPE, unmatched routes are counted")
def _():
    assert get("/no/such/route").status_code == 404
    assert get("/open311/v2/nothing.xml").status_code == 404
    text = get("/metrics").text
    families = list(text_string_to_metric_families(text))
    assert families, "no metric families"
    for fam in families:
        names = {fam.name, fam.name + "_total"}
        assert any(f"# HELP {n} " in text for n in names), f"no HELP for {fam.name}"
        assert any(f"# TYPE {n} " in text for n in names), f"no TYPE for {fam.name}"
    requests_family = next(f for f in families if f.name == "wangge_http_requests")
    assert any(s.labels.get("route") == "unmatched" for s in requests_family.samples)
    durations = next(f for f in families if f.name == "wangge_http_request_duration_seconds")
    assert durations.type == "histogram", durations.type


print(json.dumps({"failed": FAILED}))
sys.exit(1 if FAILED else 0)
