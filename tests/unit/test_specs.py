import pytest

from gateway.common.errors import InvalidInput
from gateway.common.specs import (
    Resources,
    check_against_partitions,
    check_image_name,
    format_mib,
    format_time,
    parse_env,
    parse_size_mib,
    parse_time_seconds,
    parse_version_ref,
)
from gateway.slurm.adapter import PartitionLimits


@pytest.mark.parametrize("text,mib", [("512M", 512), ("16G", 16384), ("1.5G", 1536),
                                      ("1T", 1048576), ("100", 100), ("2gb", 2048),
                                      ("4GiB", 4096), ("1024K", 1)])
def test_sizes(text, mib):
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["", "G", "-1G", "12X", "1.2.3G", "ten"])
def test_bad_sizes(text):
    with pytest.raises(InvalidInput, match="expected a number"):
        parse_size_mib(text)


def test_zero_size():
    with pytest.raises(InvalidInput, match="at least 1M"):
        parse_size_mib("0")


@pytest.mark.parametrize("text,message", [("1K", "whole MiB"), ("1.5M", "whole MiB"),
                                          ("8M", "at least 16M"), ("2000000T", "larger")])
def test_memory_is_whole_mib_above_a_floor(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_size_mib(text, "--mem", 16)


def test_names_and_refs_ending_in_a_newline_are_refused():
    from gateway.common.specs import check_name

    for bad in ("algo\n", "algo\r", "a b"):
        with pytest.raises(InvalidInput):
            check_name(bad, "algorithm")
    with pytest.raises(InvalidInput):
        check_image_name("busybox:v1\n")
    with pytest.raises(InvalidInput):
        parse_env(["KEY\n=v"])
    with pytest.raises(InvalidInput):
        parse_size_mib("16G\n\n\nx")


@pytest.mark.parametrize("ref", ["x@v99999999999999999999", "x@v9223372036854775808",
                                 "x@v0", "x@v-1", "x@v\u0663"])
def test_version_numbers_sqlite_cannot_hold_are_refused(ref):
    with pytest.raises(InvalidInput, match="invalid version"):
        parse_version_ref(ref, "algorithm")


def test_times_beyond_a_year_or_the_partition_are_refused():
    with pytest.raises(InvalidInput, match="more than a year"):
        parse_time_seconds("69444-00:00:00")
    short = PartitionLimits("short", 4, 8192, 0, True, True, 3600)
    with pytest.raises(InvalidInput, match="at most 0-01:00:00"):
        check_against_partitions(Resources(1, 0, 100, 1, 7200, "short"), {"short": short})
    assert check_against_partitions(Resources(1, 0, 100, 1, 3600, "short"),
                                    {"short": short}) == "short"


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("1:30", 90), ("2:00:00", 7200),
                                          ("1-00", 86400), ("1-02:03", 93780),
                                          ("0-00:00:05", 5)])
def test_times(text, seconds):
    assert parse_time_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1-25:00:00", "0:61", "0", "-5",
                                  "1-00:60:00"])
def test_bad_times(text):
    with pytest.raises(InvalidInput, match="invalid time"):
        parse_time_seconds(text)


def test_formats():
    assert format_time(93784) == "1-02:03:04"
    assert format_mib(2048) == "2G" and format_mib(1536) == "1536M"
    assert format_mib(1024 * 1024) == "1T"


def test_version_refs():
    assert parse_version_ref("det", "algorithm").number is None
    assert parse_version_ref("det@v3", "algorithm").number == 3
    assert parse_version_ref("det@3", "algorithm").number == 3
    for bad in ("det@v0", "det@latest", "../x", "a b", "@v1", ""):
        with pytest.raises(InvalidInput):
            parse_version_ref(bad, "algorithm")


def test_image_names():
    assert check_image_name("detectron2:v1") == "detectron2:v1"
    assert check_image_name("team/base") == "team/base:latest"
    for bad in ("Upper:v1", "x:", "x:a b", ":v1", "x:$(id)"):
        with pytest.raises(InvalidInput):
            check_image_name(bad)


def test_env_values_are_literal():
    env = parse_env(["A=it's \"q\" $(id) `x`\nline", "B=", "C=x=y"])
    assert env == {"A": "it's \"q\" $(id) `x`\nline", "B": "", "C": "x=y"}
    for bad in ("1A=x", "A-B=x", "=x"):
        with pytest.raises(InvalidInput):
            parse_env([bad])


def test_env_name_alone_takes_the_value_from_the_environment():
    assert parse_env(["TOKEN"], {"TOKEN": "s3cret"}) == {"TOKEN": "s3cret"}
    with pytest.raises(InvalidInput, match="not set in your environment"):
        parse_env(["NOVALUE"], {})


PARTS = {"debug": PartitionLimits("debug", 2, 20000, 0, True, True),
         "gpu": PartitionLimits("gpu", 64, 500000, 8, False, True)}


def res(**kw):
    base = {"cpus": 1, "gpus": 0, "mem_mib": 1024, "shm_mib": 64, "time_seconds": 60,
            "partition": ""}
    base.update(kw)
    return Resources(**base)


def test_partition_limits_named():
    assert check_against_partitions(res(), PARTS) == "debug"
    assert check_against_partitions(res(gpus=8, partition="gpu"), PARTS) == "gpu"
    with pytest.raises(InvalidInput, match=r"--gpus asks for 1 .* partition 'debug' has 0"):
        check_against_partitions(res(gpus=1), PARTS)
    with pytest.raises(InvalidInput, match=r"--cpus asks for 3 .* has 2"):
        check_against_partitions(res(cpus=3), PARTS)
    with pytest.raises(InvalidInput, match="--mem \\+ --shm asks for"):
        check_against_partitions(res(mem_mib=19990, shm_mib=64), PARTS)
    with pytest.raises(InvalidInput, match="no partition 'nope'"):
        check_against_partitions(res(partition="nope"), PARTS)


def test_config_layers_and_expansion(tmp_path, monkeypatch):
    from gateway.home.config import load_config

    site = tmp_path / "site.toml"
    user = tmp_path / "user.toml"
    site.write_text('home = "/shared/gw/$GWTEST_USER"\ncpus = 4\nmem = "8G"\n')
    user.write_text('cpus = 2\n')
    monkeypatch.setenv("GW_SITE_CONFIG", str(site))
    monkeypatch.setenv("GW_USER_CONFIG", str(user))
    monkeypatch.setenv("GWTEST_USER", "alice")
    monkeypatch.delenv("GW_HOME", raising=False)
    monkeypatch.delenv("GW_DATABASE", raising=False)
    monkeypatch.setenv("GW_PARTITION", "gpu")
    config = load_config()
    assert str(config.home) == "/shared/gw/alice"
    assert str(config.database) == "/shared/gw/alice/gateway.db"
    assert config["cpus"] == 2 and config["mem"] == "8G" and config["partition"] == "gpu"
    assert config.sources["cpus"].startswith("user file")
    assert config.sources["partition"] == "$GW_PARTITION"
    user.write_text("bogus = 1\n")
    with pytest.raises(InvalidInput, match="unknown key"):
        load_config()
    user.write_text("cpus = [\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_config()


def test_gpu_types_and_features_are_checked_against_the_partition():
    from gateway.common.specs import Resources, check_against_partitions, parse_gpus
    from gateway.slurm.adapter import PartitionLimits

    gpu = PartitionLimits("gpu", 64, 500000, 8, True, True, None, frozenset({"a100"}),
                          frozenset({"a100", "ib"}))
    assert parse_gpus("a100:2") == (2, "a100") and parse_gpus(3) == (3, "")
    ok = Resources(8, 2, 1024, 64, 3600, "gpu", gpu_type="a100", constraint="a100&ib")
    assert check_against_partitions(ok, {"gpu": gpu}) == "gpu"
    with pytest.raises(InvalidInput, match=r"GPUs of type 'h100' .types: a100"):
        check_against_partitions(Resources(8, 2, 1024, 64, 3600, "gpu", gpu_type="h100"),
                                 {"gpu": gpu})
    with pytest.raises(InvalidInput, match="feature 'v100'"):
        check_against_partitions(Resources(8, 0, 1024, 64, 3600, "gpu",
                                           constraint="[a100*2|v100]"), {"gpu": gpu})
