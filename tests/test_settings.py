"""The run's settings: quick mode (COURSE_QUICK, what CI and the grader set) and the device (course_utils.device)."""
from __future__ import annotations

import pytest
import torch

from course_utils import device, settings


def test_quick_mode_reads_course_quick(monkeypatch):
    """CI and the grader set COURSE_QUICK=1: pick() then gives the quick value, otherwise the full one."""
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    assert not settings.quick_mode() and settings.pick(2000, 200) == 2000
    for value in ("1", "true", " YES ", "on"):
        monkeypatch.setenv("COURSE_QUICK", value)
        assert settings.quick_mode() and settings.pick(2000, 200) == 200, value
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert not settings.quick_mode()


def test_a_lesson_says_in_quick_mode_that_its_numbers_differ_from_the_text(monkeypatch, capsys):
    """The lessons' text quotes the stored full run: in quick mode their first cell says the figures differ."""
    monkeypatch.setenv("COURSE_QUICK", "1")
    settings.say_if_quick()
    printed = capsys.readouterr().out.rstrip("\n").split("\n")
    assert " ".join(printed) == settings.QUICK_NOTE and max(map(len, printed)) <= settings.PRINT_WIDTH, printed
    monkeypatch.delenv("COURSE_QUICK")
    settings.say_if_quick()
    assert capsys.readouterr().out == ""


def test_get_device_prefers_cuda_and_refuses_a_missing_one(monkeypatch):
    """get_device(): cuda first when there is one; asking for cuda on a machine without it is an error that
    says so, not a crash later."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="torch.cuda.is_available\\(\\) is False"):
        device.get_device("cuda")
    assert device.get_device("cpu") == torch.device("cpu")


def test_cuda_and_cuda_0_are_the_same_device():
    """A model on cuda:0 runs with device='cuda' (an index None means the current device)."""
    assert device._same_device(torch.device("cuda:0"), torch.device("cuda"))
    assert not device._same_device(torch.device("cuda:0"), torch.device("cuda:1"))


def test_wrapped_cuts_long_lines_at_spaces_and_keeps_short_ones_and_line_breaks():
    """settings.wrapped: what a lesson prints past PRINT_WIDTH columns (a stored run's command, a config) is cut at
    spaces, each line on its own; a word longer than a line stays whole; short lines come back unchanged."""
    long = "stored run: " + " ".join(f"word{i}" for i in range(60))
    text = f"{long}\n  short line\n\n{'x' * 130} tail"
    lines = settings.wrapped(text).split("\n")
    assert lines[0].startswith("stored run: word0") and all(line.startswith("    word") for line in lines[1:4])
    assert all(len(line) <= settings.PRINT_WIDTH for line in lines if "xxx" not in line), lines
    assert "  short line" in lines and "" in lines and "x" * 130 in lines
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())          # the same words, in order
    assert settings.wrapped("ok: 3 steps") == "ok: 3 steps"


def test_a_printed_train_config_fits_the_output_area():
    """print(TrainConfig(...)) in lessons 4 and 6 was one 260-character line: it prints wrapped, its repr stays."""
    from course_utils.training import TrainConfig
    config = TrainConfig(steps=3000, batch_size=512, lr=2e-3, label_dropout=0.2)
    lines = str(config).split("\n")
    assert len(lines) > 1 and max(map(len, lines)) <= settings.PRINT_WIDTH, lines
    assert " ".join(" ".join(lines).split()) == repr(config) and "\n" not in repr(config)
    assert all(line.startswith(" " * len("TrainConfig(")) for line in lines[1:])
