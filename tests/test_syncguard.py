"""The CPU detector of host synchronisations (searnn.syncguard): it catches each op that synchronises a CUDA
device and leaves plain device work alone."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from searnn.syncguard import SyncGuard, is_host, mark_host

X = torch.arange(10.0)
MASK = X > 4


def flagged(fn) -> list[str]:
    with SyncGuard() as guard:
        fn()
    return [event.op for event in guard.events]


SYNCING = {
    "item": lambda: X.sum().item(),
    "int": lambda: int(X.max()),
    "bool": lambda: bool(MASK.all()),
    "float": lambda: float(X[0]),
    "nonzero": lambda: MASK.nonzero(),
    "mask index": lambda: X[MASK],
    "masked_select": lambda: X.masked_select(MASK),
    "mask assignment": lambda: X.clone().__setitem__(MASK, 0.0),
    "unique": lambda: torch.unique(X),
    "unique inverse": lambda: torch.unique(X, return_inverse=True),
    "unique_consecutive": lambda: torch.unique_consecutive(X),
    "repeat_interleave tensor": lambda: X.repeat_interleave(torch.ones(10, dtype=torch.long)),
    "cpu": lambda: X.cpu(),
    "tolist": lambda: X.tolist(),
    "numpy": lambda: X.numpy(),
    "to cpu": lambda: X.to("cpu"),
    "tensor from a list": lambda: torch.tensor([1, 2]),
    "list index": lambda: X[[1, 2]],
    "bincount": lambda: torch.bincount(torch.arange(3)),
    "equal": lambda: torch.equal(X, X),
}

FREE = {
    "arithmetic": lambda: (X * 2 + 1).exp().sum(dim=0),
    "nonzero_static": lambda: torch.nonzero_static(MASK, size=10),
    "gather": lambda: X.gather(0, torch.arange(3)),
    "scatter": lambda: X.scatter(0, torch.arange(3), X[:3]),
    "where": lambda: torch.where(MASK, X, -X),
    "long index": lambda: X[torch.arange(3)],
    "long index assignment": lambda: X.clone().index_put_((torch.arange(3),), X[:3]),
    "scalar assignment": lambda: X.clone().__setitem__(0, 5.0),
    "topk and sort": lambda: (X.topk(3), X.sort()),
    "repeat_interleave with output_size": lambda: X.repeat_interleave(torch.ones(10, dtype=torch.long),
                                                                     output_size=10),
    "repeat_interleave int": lambda: X.repeat_interleave(2),
    "masked_fill": lambda: X.masked_fill(MASK, 0.0),
    "to own device": lambda: X.to(X.device),
}


@pytest.mark.parametrize("name", list(SYNCING))
def test_guard_catches_each_synchronising_op(name) -> None:
    assert flagged(SYNCING[name]), name


@pytest.mark.parametrize("name", list(FREE))
def test_guard_leaves_device_work_alone(name) -> None:
    assert flagged(FREE[name]) == [], name


def test_raise_mode_names_the_op_and_the_line() -> None:
    with pytest.raises(RuntimeError, match=r"_local_scalar_dense.*test_syncguard.py:\d+"), SyncGuard("raise"):
        int(X.max())


def test_host_tensors_and_what_is_computed_from_them_are_exempt() -> None:
    host = mark_host(torch.tensor([3, 1, 2]))
    assert is_host(host[0])  # a view of a host tensor
    with SyncGuard() as guard:  # inside the guard, results of host-only ops are host tensors
        order = torch.sort(host, descending=True).indices
        int(host.max()), order.tolist(), host.cpu(), int(order[0])
    assert is_host(order) and guard.events == []
    assert flagged(lambda: int((host + X[:3].long()).max()))  # mixed with device data: flagged


def test_packed_sequences_from_host_lengths_do_not_synchronise() -> None:
    rnn = torch.nn.GRU(2, 3, batch_first=True, bidirectional=True)
    x = torch.randn(3, 4, 2)
    lengths = mark_host(torch.tensor([4, 2, 1]))
    assert flagged(lambda: rnn(pack_padded_sequence(x, lengths, batch_first=True))) == []
    assert flagged(lambda: pack_padded_sequence(x, torch.tensor([4, 2, 1]).to(x.device).cpu(), batch_first=True))


def test_allow_suspends_the_checks_and_events_are_listed() -> None:
    with SyncGuard() as guard:
        with guard.allow():
            int(X.max())
        assert guard.report() == "no synchronisation"
        MASK.nonzero()
    assert len(guard.events) == 1 and "nonzero" in guard.report()
    with pytest.raises(ValueError, match="mode"):
        SyncGuard("warn")


def test_guard_is_exported_for_users() -> None:
    import searnn.testing

    assert searnn.testing.SyncGuard is SyncGuard and searnn.testing.mark_host is mark_host
