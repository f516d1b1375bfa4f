"""The per-citizen cache of shaped views: keyed by reader, record and stamp; bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from health.access.actor import Actor, ActorKind
from health.access.proxy import ProxyBasis, ProxyRight
from health.portal.record import citizen_actor
from health.portal.view_cache import CachedView, ViewCache, view_key

NOW = datetime(2024, 6, 1, 10, 30, tzinfo=UTC)


def _view(name: str, weight: int = 1) -> CachedView:
    return CachedView(view=name, looked_up={}, weight=weight)


def test_a_proxy_and_the_citizen_never_share_a_view() -> None:
    citizen = citizen_actor("p1", "0101011234", "Ida")
    right = ProxyRight("p1", next(iter(ProxyBasis)), "rp1", None)
    proxy = Actor(
        kind=ActorKind.citizen,
        display="Mor",
        patient_id="p1",
        national_id="0202021234",
        proxy=right,
    )
    stamp = (3, 7, "2024-05-01")
    keys = {
        view_key("timeline", citizen, "p1", stamp, NOW),
        view_key("timeline", proxy, "p1", stamp, NOW),
        view_key("timeline", citizen_actor("p2", "0303031234", "Bo"), "p2", stamp, NOW),
    }
    assert len(keys) == 3


def test_a_changed_record_or_a_new_hour_is_a_new_key() -> None:
    citizen = citizen_actor("p1", "0101011234", "Ida")
    key = view_key("timeline", citizen, "p1", (3, 7, "t"), NOW)
    assert key == view_key("timeline", citizen, "p1", (3, 7, "t"), NOW.replace(minute=59))
    assert key != view_key("timeline", citizen, "p1", (3, 8, "t"), NOW)
    assert key != view_key("timeline", citizen, "p1", (3, 7, "t"), NOW.replace(hour=11))


def test_the_least_recently_used_views_go_when_the_bound_is_passed() -> None:
    cache = ViewCache(max_resources=10)
    cache.put("a", _view("a", 4))
    cache.put("b", _view("b", 4))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", _view("c", 4))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    cache.put("huge", _view("huge", 11))
    assert cache.get("huge") is None and len(cache) == 2


def test_get_or_shape_shapes_once_per_key_and_every_time_without_one() -> None:
    cache = ViewCache()
    shaped: list[str] = []

    def shape() -> CachedView:
        shaped.append("x")
        return _view("x")

    cache.get_or_shape("k", shape)
    cache.get_or_shape("k", shape)
    cache.get_or_shape(None, shape)
    assert len(shaped) == 2
