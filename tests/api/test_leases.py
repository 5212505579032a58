"""The guided queue leases what it hands out: annotators asking at once get different
superpixels, unless the project asks for overlap; leases hold across API instances because they
are conditional writes in the projections table, not process memory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from histolabel.adapters.memory import InMemoryLeaseStore
from histolabel.leases import Lease

P = "/projects/proj"


def queue(api, user, n=20):
    r = api.request("GET", f"{P}/queue?n={n}", user=user)
    assert r.status_code == 200, r.body
    return [(i["slide_id"], i["id"]) for i in r.json_body["items"]]


def set_overlap(api, share):
    r = api.request("PUT", f"{P}/settings", user="olivia", body={"settings": {"label_overlap": share}})
    assert r.status_code == 200, r.body
    assert r.json_body["settings"]["label_overlap"] == share


def test_two_annotators_at_once_get_different_superpixels(api):
    with ThreadPoolExecutor(2) as pool:
        a, o = pool.map(lambda u: queue(api, u), ["ana", "olivia"])
    assert len(a) == len(o) == 20
    assert not set(a) & set(o)
    # Asking again renews one's own leases: the same cards, still none of the other's.
    assert queue(api, "ana") == a
    # A reviewer (who may use the queue) gets a third set.
    r = queue(api, "rex")
    assert not set(r) & (set(a) | set(o))


def test_overlap_gives_the_share_asked_for_to_two_people_and_no_more(api):
    set_overlap(api, 1.0)
    a, o = queue(api, "ana"), queue(api, "olivia")
    assert a == o  # every superpixel is wanted twice: both get the same first cards
    third = queue(api, "rex")
    assert not set(third) & set(a)  # both slots of those are held
    # Once ana has labeled them, olivia is still offered them (her second opinion), rex is not.
    ids = [i for _, i in a[:5]]
    r = api.request("POST", f"{P}/slides/s1/labels", user="ana", body={"category_id": "tumor", "ids": ids})
    assert r.status_code == 200
    assert set(ids) <= {i for _, i in queue(api, "olivia")}
    assert not set(ids) & {i for _, i in queue(api, "ana")}
    r = api.request(
        "POST", f"{P}/slides/s1/labels", user="olivia", body={"category_id": "stroma", "ids": ids}
    )
    assert r.status_code == 200
    assert not set(ids) & {i for _, i in queue(api, "rex", n=60)}

    set_overlap(api, 0.25)
    a2, o2 = queue(api, "ana", n=200), queue(api, "olivia", n=200)
    shared = len(set(a2) & set(o2))
    assert 0 < shared < 200  # about a quarter of what is handed out is handed out twice


def test_bad_overlap_is_refused(api):
    r = api.request("PUT", f"{P}/settings", user="olivia", body={"settings": {"label_overlap": 1.5}})
    assert r.status_code == 422 and "label_overlap" in r.json_body["field"]


def _store_contract(store, now=1000.0):
    lease = Lease("s1", 7, 0, "ana", now + 300)
    assert store.take("p", lease, now)
    assert store.take("p", lease, now + 10)  # renewal by the holder
    assert not store.take("p", Lease("s1", 7, 0, "olivia", now + 300), now + 10)
    assert store.take("p", Lease("s1", 7, 1, "olivia", now + 300), now + 10)  # the other slot
    assert store.take("p", Lease("s1", 7, 0, "olivia", now + 300), now + 10, spent="ana")  # ana labeled it
    assert store.take("q", Lease("s1", 7, 0, "rex", now + 300), now)  # another project
    assert store.take("p", Lease("s1", 7, 0, "rex", now + 700), now + 301)  # expired
    # Many takers at once: exactly one holds the slot.
    wins = []
    barrier = threading.Barrier(8)

    def race(user):
        barrier.wait()
        if store.take("p", Lease("s2", 1, 0, user, now + 300), now):
            wins.append(user)

    threads = [threading.Thread(target=race, args=(f"u{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    asked = {("s1", 7): 2, ("s2", 1): 1, ("s3", 5): 2}
    running = {(x.slide_id, x.id, x.slot, x.holder) for x in store.held("p", now + 20, asked)}
    assert running == {("s1", 7, 1, "olivia"), ("s1", 7, 0, "rex"), ("s2", 1, 0, wins[0])}
    assert {x.holder for x in store.held("p", now + 400, asked)} == {"rex"}
    # Only the slots asked about: one slot of s1/7 leaves the other's lease out.
    assert {(x.slot, x.holder) for x in store.held("p", now + 20, {("s1", 7): 1})} == {(0, "rex")}
    assert store.held("p", now + 20, {}) == []
    # Many at once: the free slots are taken, the held one refused, in the order asked.
    page = [(Lease("s4", i, 0, "ben", now + 300), None) for i in (1, 2, 3)]
    page.insert(1, (Lease("s1", 7, 1, "ben", now + 300), None))  # olivia's
    page.append((Lease("s1", 7, 0, "ben", now + 300), "rex"))  # rex's, but rex labeled it
    assert store.take_all("p", page, now + 20) == [True, False, True, True, True]
    assert {x.holder for x in store.held("p", now + 20, {("s4", 2): 1, ("s1", 7): 2})} == {"ben", "olivia"}
    # Pages racing for overlapping slots: each slot is won once.
    won: list[tuple[str, int]] = []
    barrier = threading.Barrier(4)

    def race_page(user):
        barrier.wait()
        wanted = [(Lease("s5", i, 0, user, now + 300), None) for i in range(1, 9)]
        for (lease, _), ok in zip(wanted, store.take_all("p", wanted, now), strict=True):
            if ok:
                won.append((user, lease.id))

    threads = [threading.Thread(target=race_page, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for _u, i in won) == list(range(1, 9))


def test_in_memory_lease_store_contract():
    _store_contract(InMemoryLeaseStore())


@pytest.mark.usefixtures("cloud")
def test_dynamo_lease_store_contract_across_instances(cloud):
    from histolabel.adapters.dynamo_leases import DynamoLeaseStore

    _store_contract(DynamoLeaseStore(cloud))
    # Two stores (two Lambda instances) see one set of leases.
    one, two = DynamoLeaseStore(cloud), DynamoLeaseStore(cloud)
    assert one.take("x", Lease("s1", 1, 0, "ana", 2000.0), 1000.0)
    assert not two.take("x", Lease("s1", 1, 0, "olivia", 2000.0), 1000.0)
