"""Item pictures in the console's catalogue editor (TestClient, SQLite and PostgreSQL):
an upload becomes a small JPEG thumbnail kept at central and pushed to kiosks that take
pictures; bad files, a stale version, a missing CSRF token, another village's account
and an oversized body are refused with nothing changed."""

from __future__ import annotations

import io
import re

from PIL import Image

from central import audit, operations
from central.catalogue_file import MAX_PICTURE_BYTES, THUMB_PX, CatalogueItem
from central.http_guard import HttpLimits
from tests.central import test_auth
from tests.central.conftest import NOW, SQLITE_ONLY
from tests.central.test_auth import Site

# SQLite only: the pictures' upload and checks; tests/central/test_state.py runs the
# state that carries them on both.
pytestmark = SQLITE_ONLY

site = test_auth.site  # the fixture: a kiosk's day at V1, county, v1 and v2 accounts

PATH = "/villages/V1/catalogue/rice/picture"


def photo(size: tuple[int, int] = (1200, 900), kind: str = "JPEG") -> bytes:
    """A phone-photo-like picture: large, noisy, so its thumbnail is not trivial."""
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, kind)
    return out.getvalue()


def version_on_page(site: Site) -> int:
    page = site.client.get("/villages/V1/catalogue").text
    return int(re.findall(r'name="version" value="(\d+)"', page)[0])


def post_picture(
    site: Site, raw: bytes | None, *, version: int | None = None, **fields: str
) -> object:
    data = {"csrf": site.csrf("/villages/V1/catalogue"), **fields}
    data["version"] = str(version_on_page(site) if version is None else version)
    # A browser sends an empty file input as a part with no file name.
    blank = ("", b"", "application/octet-stream")
    files = {"picture": blank if raw is None else ("photo.jpg", raw, "image/jpeg")}
    return site.client.post(PATH, data=data, files=files, follow_redirects=False)


def stored(site: Site) -> bytes | None:
    (item,) = operations.catalogue(site.store, "V1").items
    return item.picture


def test_an_uploaded_photo_becomes_a_thumbnail_shown_and_audited(site: Site) -> None:
    operations.set_catalogue(
        site.store, "V1", [CatalogueItem("rice", "大米", "Rice", 50)], actor="t", now_ms=NOW
    )
    site.login("county")
    page = site.client.get("/villages/V1/catalogue").text
    assert 'data-testid="picture-rice"' in page and "无图片" in page
    r = post_picture(site, photo())
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    pic = stored(site)
    assert pic is not None and len(pic) <= MAX_PICTURE_BYTES
    with Image.open(io.BytesIO(pic)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == THUMB_PX
    page = site.client.get("/villages/V1/catalogue").text
    src = re.search(r'<img src="(/villages/V1/catalogue/rice/picture\?v=[0-9a-f]+)"', page)
    assert src is not None
    got = site.client.get(src.group(1))
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.content == pic
    row = audit.rows(site.store, village_id="V1")[0]
    assert (row.actor, row.action) == ("county", "catalogue.set")
    assert row.before is not None and row.after is not None
    assert row.before != row.after  # the picture's digest changed
    # A PNG works too; removing it leaves the item without one.
    assert post_picture(site, photo((300, 200), "PNG")).status_code == 303  # type: ignore[attr-defined]
    assert stored(site) not in (None, pic)
    assert post_picture(site, None, remove="1").status_code == 303  # type: ignore[attr-defined]
    assert stored(site) is None
    assert site.client.get(PATH).status_code == 404


def test_bad_uploads_are_refused_and_change_nothing(site: Site) -> None:
    operations.set_catalogue(
        site.store, "V1", [CatalogueItem("rice", "大米", "Rice", 50)], actor="t", now_ms=NOW
    )
    before = operations.catalogue(site.store, "V1").version
    site.login("county")
    for raw, status, words in [
        (b"<svg onload=alert(1)>", 422, "not a PNG or JPEG"),
        (None, 422, "choose a PNG or JPEG"),
    ]:
        r = post_picture(site, raw)
        assert r.status_code == status and words in r.text, r.text  # type: ignore[attr-defined]
    r = post_picture(site, photo(), version=before - 1)
    assert r.status_code == 409 and 'data-testid="stale"' in r.text  # type: ignore[attr-defined]
    no_csrf = {"csrf": "", "version": str(before)}
    files = {"picture": ("p.jpg", photo(), "image/jpeg")}
    assert site.client.post(PATH, data=no_csrf, files=files).status_code == 403
    r = site.client.post(
        "/villages/V1/catalogue/nope/picture",
        data={"csrf": site.csrf("/villages/V1/catalogue"), "version": str(before)},
        files=files,
    )
    assert r.status_code == 422 and "no item" in r.text
    urlencoded = {"csrf": site.csrf("/villages/V1/catalogue"), "version": str(before)}
    assert site.client.post(PATH, data=urlencoded).status_code == 415
    # A body over the limit is refused before it is parsed.
    big = b"\xff\xd8\xff" + bytes(HttpLimits().picture_form_bytes)
    r = site.client.post(PATH, data=urlencoded, files={"picture": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    assert operations.catalogue(site.store, "V1").version == before
    assert stored(site) is None


def test_another_villages_account_cannot_see_or_change_pictures(site: Site) -> None:
    operations.set_catalogue(
        site.store, "V1", [CatalogueItem("rice", "大米", "Rice", 50)], actor="t", now_ms=NOW
    )
    site.login("v2")
    data = {"csrf": site.csrf("/villages/V2/catalogue"), "version": "1"}
    files = {"picture": ("p.jpg", photo(), "image/jpeg")}
    assert site.client.post(PATH, data=data, files=files).status_code == 403
    assert site.client.get(PATH).status_code == 403
    assert stored(site) is None
