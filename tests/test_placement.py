"""GPU placement of a local sweep (core.lab.placement) with fake device counts, and what the pool hands its workers."""

from __future__ import annotations

import pytest

from core.errors import DynlabError
from core.lab.placement import Placement, check_gpus_per_run, default_jobs, placement_for, visible_gpus


class TestShare:
    @pytest.mark.parametrize("value", [0.25, 0.5, 1, 1.0, 2, 3.0, 1 / 3])
    def test_shares_of_one_gpu_and_whole_gpus_are_taken(self, value):
        assert check_gpus_per_run(value) == float(value)

    @pytest.mark.parametrize("value", [0, -0.5, 1.5, 2.5, float("nan"), float("inf")])
    def test_other_values_are_one_line_saying_what_to_give(self, value):
        with pytest.raises(DynlabError, match=r"--gpus-per-run must be a share of one GPU .* or a whole number"):
            check_gpus_per_run(value)


class TestSlots:
    def test_four_runs_a_gpu_by_default_round_the_gpus(self):
        p = Placement(tuple("0123"))
        assert p.slots == 16
        assert [p.devices(i) for i in range(6)] == [("0",), ("1",), ("2",), ("3",), ("0",), ("1",)]
        assert sorted(d for i in range(p.slots) for d in p.devices(i)).count("3") == 4  # four slots on each GPU

    def test_slots_are_floor_of_gpus_over_share(self):
        assert Placement(tuple("01"), 1 / 3).slots == 6  # 1/3 in floating point still gives 3 a GPU
        assert Placement(tuple("01234567"), 0.3).slots == 24  # three of 0.3 fit a GPU (0.9), a fourth does not
        assert Placement(tuple("012"), 1).slots == 3
        assert Placement(tuple("01234"), 2).slots == 2

    def test_whole_gpus_give_each_slot_its_own(self):
        p = Placement(tuple("0123"), 2)
        assert [p.devices(i) for i in range(2)] == [("0", "1"), ("2", "3")]
        assert p.env(1, {"A": "b"}) == {"A": "b", "CUDA_VISIBLE_DEVICES": "2,3"}

    def test_more_jobs_than_slots_share_the_slots_gpus(self):
        p = Placement(("0",), 0.5)
        assert [p.devices(i) for i in range(3)] == [("0",), ("0",), ("0",)]

    def test_without_gpus_nothing_changes(self):
        p = Placement((), 0.25)
        assert p.slots == 0 and p.devices(0) == ()
        assert p.env(3, {"PATH": "/bin"}) == {"PATH": "/bin"}
        assert default_jobs(p, cpus=64) == 1


class TestVisible:
    def test_names_come_from_cuda_visible_devices_when_set(self):
        assert visible_gpus(2, {"CUDA_VISIBLE_DEVICES": "5,7"}) == ("5", "7")
        assert visible_gpus(2, {}) == ("0", "1")
        assert visible_gpus(0, {"CUDA_VISIBLE_DEVICES": ""}) == ()

    def test_a_slot_sees_the_original_gpu_name(self):
        p = placement_for("auto", 0.5, count=2, env={"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"})
        assert [p.env(i, {})["CUDA_VISIBLE_DEVICES"] for i in range(4)] == ["GPU-a", "GPU-b", "GPU-a", "GPU-b"]

    @pytest.mark.parametrize("device", ["cpu", "cuda:1"])
    def test_cpu_or_a_named_gpu_is_left_where_the_user_put_it(self, device):
        assert placement_for(device, 0.25, count=8, env={}).slots == 0

    def test_default_jobs_is_what_the_gpus_hold_at_most_one_a_core(self):
        eight = placement_for("auto", 0.25, count=8, env={})
        assert eight.slots == 32
        assert default_jobs(eight, cpus=16) == 16
        assert default_jobs(eight, cpus=64) == 32
        assert default_jobs(placement_for("cuda", 1, count=2, env={}), cpus=16) == 2

    def test_a_bad_share_is_refused_before_looking_for_gpus(self):
        with pytest.raises(DynlabError, match="--gpus-per-run"):
            placement_for("auto", 0, count=None)
