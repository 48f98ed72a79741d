"""Recipes: placeholders, --set and --sweep values, exact reruns."""

import pytest

from gateway.common.errors import InvalidInput
from gateway.jobs.recipes import (
    check_values_used,
    fill,
    parse_sets,
    parse_sweeps,
    placeholders,
)


def test_fill_is_literal_and_keeps_arguments_whole():
    command = ("python", "t.py", "--lr={{lr}}", "{{ note }}", "{{ lr }}x")
    assert placeholders(command) == ["lr", "note"]
    hostile = "a b; $(id) `id` '\"\n{{ lr }}"
    assert fill(command, {"lr": "0.1", "note": hostile}) == (
        "python", "t.py", "--lr=0.1", hostile, "0.1x")  # a value is never filled again


def test_missing_and_unused_values_are_refused():
    with pytest.raises(InvalidInput, match=r"\{\{ note \}\}"):
        fill(("{{ lr }}", "{{ note }}"), {"lr": "1"})
    with pytest.raises(InvalidInput, match=r"no {{ typo }}"):
        check_values_used(("{{ lr }}",), ["lr", "typo"], "--set")


@pytest.mark.parametrize("bad", ["novalue", "=1", "1x=2", "a-b=1", "k=\0"])
def test_bad_set_values(bad):
    with pytest.raises(InvalidInput):
        parse_sets([bad])


def test_sweep_is_every_combination_first_key_slowest():
    assert parse_sweeps(["lr=0.1,0.01", "bs=32,64"]) == [
        {"lr": "0.1", "bs": "32"}, {"lr": "0.1", "bs": "64"},
        {"lr": "0.01", "bs": "32"}, {"lr": "0.01", "bs": "64"}]
    assert parse_sweeps(["seed=1"]) == [{"seed": "1"}]


@pytest.mark.parametrize("bad", [["lr=0.1,,1"], ["lr="], ["lr=1", "lr=2"],
                                 ["a=" + ",".join(map(str, range(101))),
                                  "b=" + ",".join(map(str, range(101)))]])
def test_bad_sweeps(bad):
    with pytest.raises(InvalidInput):
        parse_sweeps(bad)


def test_a_command_line_keeps_each_placeholder_in_its_word():
    from gateway.jobs.recipes import placeholders, split_command_line

    words = split_command_line("sh /code/train.sh --lr {{ lr }} 'a b' x{{ seed}}y")
    assert words == ("sh", "/code/train.sh", "--lr", "{{lr}}", "a b", "x{{seed}}y")
    assert placeholders(words) == ["lr", "seed"]
    with pytest.raises(InvalidInput, match="cannot be read as shell words"):
        split_command_line("echo 'unclosed")
