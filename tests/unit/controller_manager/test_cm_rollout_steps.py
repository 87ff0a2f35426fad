"""One rolling-update step, and whole rollouts simulated on the pure
arithmetic: the surge and availability bounds hold at every step whatever
order the ReplicaSet controller and the kubelet act in."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from services.controller_manager.rollout import (
    Fenceposts, RSView, rolling_new_replicas, rolling_old_replicas,
)


def fp(replicas: int, surge: int, unavailable: int) -> Fenceposts:
    return Fenceposts(replicas=replicas, max_surge=surge, max_unavailable=unavailable)


def test_rolling_new_replicas_grows_within_surge():
    old = RSView("old", replicas=10, available=10, size=10)
    new = RSView("new", replicas=0)
    assert rolling_new_replicas(fp(10, 3, 2), new, [old]) == 3


def test_rolling_new_replicas_waits_while_at_the_surge_limit():
    old = RSView("old", replicas=10, available=10, size=10)
    new = RSView("new", replicas=3, size=3)
    assert rolling_new_replicas(fp(10, 3, 2), new, [old]) == 3


def test_rolling_new_replicas_counts_pods_still_being_deleted():
    # The old ReplicaSet was scaled to 8 but its 10 pods are still there.
    old = RSView("old", replicas=8, available=8, size=10)
    new = RSView("new", replicas=3, size=3)
    assert rolling_new_replicas(fp(10, 3, 2), new, [old]) == 3


def test_rolling_new_replicas_never_exceeds_replicas():
    new = RSView("new", replicas=9, size=9)
    assert rolling_new_replicas(fp(10, 5, 2), new, []) == 10
    assert rolling_new_replicas(fp(10, 5, 2), RSView("new", replicas=12), []) == 10


def test_rolling_old_replicas_keeps_minimum_availability():
    old = RSView("old", replicas=10, available=10, size=10)
    new = RSView("new", replicas=3, available=0, size=3)
    # 10 available, 8 must stay: shrink old by 2.
    assert rolling_old_replicas(fp(10, 3, 2), new, [old]) == {"old": 8}


def test_rolling_old_replicas_does_nothing_at_the_minimum():
    old = RSView("old", replicas=8, available=8, size=8)
    new = RSView("new", replicas=5, available=0, size=5)
    assert rolling_old_replicas(fp(10, 3, 2), new, [old]) == {}


def test_rolling_old_replicas_counts_new_available_pods():
    old = RSView("old", replicas=8, available=8, size=8)
    new = RSView("new", replicas=5, available=3, size=5)
    assert rolling_old_replicas(fp(10, 3, 2), new, [old]) == {"old": 5}


def test_rolling_old_replicas_removes_unhealthy_pods_first_oldest_first():
    oldest = RSView("a", replicas=3, available=1, size=3, created=1)
    older = RSView("b", replicas=3, available=3, size=3, created=2)
    new = RSView("new", replicas=4, available=4, size=4, created=3)
    # Budget: 6 old + 4 new available - 8 minimum = 2; both go to a's unavailable pods.
    assert rolling_old_replicas(fp(8, 2, 0), new, [older, oldest]) == {"a": 1}


def test_rolling_old_replicas_trusts_at_most_spec_available():
    # A stale status says 10 available but the ReplicaSet keeps only 6.
    old = RSView("old", replicas=6, available=10, size=10)
    new = RSView("new", replicas=4, available=2, size=4)
    # Really 6 + 2 = 8 available with a minimum of 8: nothing more may go.
    assert rolling_old_replicas(fp(10, 2, 2), new, [old]) == {}


def test_rolling_old_replicas_ignores_empty_old_sets():
    assert rolling_old_replicas(fp(3, 1, 1), RSView("new", 3, 3, 3),
                                [RSView("old", 0)]) == {}


# --- whole rollouts --------------------------------------------------------------------------


@dataclasses.dataclass
class FakeRS:
    """A ReplicaSet and its pods: True for a ready pod."""

    name: str
    created: int
    spec: int
    pods: list[bool]

    def view(self) -> RSView:
        ready = sum(self.pods)
        return RSView(self.name, self.spec, available=min(self.spec, ready),
                      size=len(self.pods), created=self.created)


class Cluster:
    def __init__(self, replicas: int, surge: int, unavailable: int):
        self.fp = fp(replicas, surge, unavailable)
        self.old = FakeRS("old", 0, replicas, [True] * replicas)
        self.new = FakeRS("new", 1, 0, [])

    def controller(self) -> None:
        """One deployment sync: scale up if possible, else scale down."""
        new, olds = self.new.view(), [self.old.view()]
        target = rolling_new_replicas(self.fp, new, olds)
        if target != self.new.spec:
            self.new.spec = target
            return
        plan = rolling_old_replicas(self.fp, new, olds)
        if "old" in plan:
            self.old.spec = plan["old"]

    def replicaset(self, rs: FakeRS) -> None:
        """The ReplicaSet controller: create or delete (not ready first)."""
        while len(rs.pods) < rs.spec:
            rs.pods.append(False)
        while len(rs.pods) > rs.spec:
            rs.pods.remove(False if False in rs.pods else True)

    def kubelet(self) -> None:
        if False in self.new.pods:
            self.new.pods[self.new.pods.index(False)] = True

    def check(self) -> None:
        total = len(self.old.pods) + len(self.new.pods)
        ready = sum(self.old.pods) + sum(self.new.pods)
        assert total <= self.fp.replicas + self.fp.max_surge
        assert ready >= self.fp.replicas - self.fp.max_unavailable

    def done(self) -> bool:
        return (self.old.pods == [] and self.new.pods == [True] * self.fp.replicas
                and self.old.spec == 0 and self.new.spec == self.fp.replicas)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.integers(0, 4), st.integers(0, 4),
       st.lists(st.sampled_from(["controller", "old", "new", "kubelet"]), max_size=200))
def test_rolling_update_bounds_hold_in_any_interleaving(replicas, surge, unavailable, actions):
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what resolve_fenceposts guarantees
    unavailable = min(unavailable, replicas)
    cluster = Cluster(replicas, surge, unavailable)
    for action in actions:
        if action == "controller":
            cluster.controller()
        elif action == "old":
            cluster.replicaset(cluster.old)
        elif action == "new":
            cluster.replicaset(cluster.new)
        else:
            cluster.kubelet()
        cluster.check()
    # Then everybody gets to run in turn: the rollout must finish.
    for _ in range(10 * (replicas + 1)):
        for step in (cluster.controller, lambda: cluster.replicaset(cluster.old),
                     lambda: cluster.replicaset(cluster.new), cluster.kubelet):
            step()
            cluster.check()
        if cluster.done():
            break
    assert cluster.done()


class StaleCluster(Cluster):
    """The same rollout, but the deployment controller sees pods through a
    cache and ReplicaSet statuses that each lag behind the truth until
    refreshed, as informers and status writes do."""

    def __init__(self, replicas: int, surge: int, unavailable: int):
        super().__init__(replicas, surge, unavailable)
        self.status = {rs.name: (len(rs.pods), sum(rs.pods)) for rs in (self.old, self.new)}
        self.cache = {rs.name: list(rs.pods) for rs in (self.old, self.new)}

    def seen(self, rs: FakeRS) -> RSView:
        replicas, available = self.status[rs.name]
        cached = self.cache[rs.name]
        return RSView(rs.name, rs.spec, available=min(rs.spec, available, sum(cached)),
                      size=max(replicas, len(cached)), created=rs.created)

    def controller(self) -> None:
        new, olds = self.seen(self.new), [self.seen(self.old)]
        target = rolling_new_replicas(self.fp, new, olds)
        if target != self.new.spec:
            self.new.spec = target
            return
        plan = rolling_old_replicas(self.fp, new, olds)
        if "old" in plan:
            self.old.spec = plan["old"]

    def write_status(self, rs: FakeRS) -> None:
        self.status[rs.name] = (len(rs.pods), sum(rs.pods))

    def refresh_cache(self) -> None:
        self.cache = {rs.name: list(rs.pods) for rs in (self.old, self.new)}


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10), st.integers(0, 3), st.integers(0, 3),
       st.lists(st.sampled_from(["controller", "old", "new", "kubelet", "status-old",
                                 "status-new", "cache"]), max_size=250))
def test_rolling_update_bounds_hold_with_stale_views(replicas, surge, unavailable, actions):
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = min(unavailable, replicas)
    cluster = StaleCluster(replicas, surge, unavailable)
    steps = {
        "controller": cluster.controller,
        "old": lambda: cluster.replicaset(cluster.old),
        "new": lambda: cluster.replicaset(cluster.new),
        "kubelet": cluster.kubelet,
        "status-old": lambda: cluster.write_status(cluster.old),
        "status-new": lambda: cluster.write_status(cluster.new),
        "cache": cluster.refresh_cache,
    }
    for action in actions:
        steps[action]()
        cluster.check()
    for _ in range(10 * (replicas + 1)):
        for action in ("controller", "old", "new", "kubelet", "status-old", "status-new",
                       "cache"):
            steps[action]()
            cluster.check()
        if cluster.done():
            break
    assert cluster.done()
