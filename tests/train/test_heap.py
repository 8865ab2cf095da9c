"""The training process's heap policy: glibc's thresholds fixed once, the user's own
settings and other C libraries left alone."""

from __future__ import annotations

import platform
import sys

import pytest

from finevl.train import heap


class FakeLibc:
    def __init__(self, answer: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


@pytest.fixture(autouse=True)
def linux_without_user_settings(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for name in (*heap.USER_SETTINGS, heap.OPT_OUT):
        monkeypatch.delenv(name, raising=False)


def test_both_thresholds_are_fixed():
    libc = FakeLibc()
    assert heap.keep_freed_memory(libc)
    assert libc.calls == [
        (heap.M_MMAP_THRESHOLD, 32 << 20),
        (heap.M_TRIM_THRESHOLD, 1 << 30),
    ]


@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "0"), ("FINEVL_KEEP_FREED_MEMORY", "0")])
def test_a_users_own_setting_is_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    libc = FakeLibc()
    assert not heap.keep_freed_memory(libc) and libc.calls == []


def test_a_refused_setting_is_reported():
    assert not heap.keep_freed_memory(FakeLibc(answer=0))


def test_other_systems_are_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    libc = FakeLibc()
    assert not heap.keep_freed_memory(libc) and libc.calls == []


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's mallopt")
def test_this_machines_glibc_takes_the_settings():
    assert heap.keep_freed_memory()
