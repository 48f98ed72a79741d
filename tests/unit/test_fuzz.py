"""Fuzzing with hypothesis: the archive and zip readers, the name and reference parsers and
the job-spec parsers, over generated input, give a result or a clean error (InvalidInput:
one line for the person) and never anything else, and never write outside their place.

CI runs a bounded number of examples per test (GW_FUZZ_EXAMPLES, default 200); a longer
run is one command: `GW_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/unit/test_fuzz.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.common.errors import InvalidInput

EXAMPLES = int(os.environ.get("GW_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40) | \
    st.sampled_from(["..", "../x", "/etc/passwd", "a@v1", "a@v0", "a@", "@v1", "x" * 200,
                     "a:b", "A:b", "a/b:c", "a@sha256:" + "0" * 64, "%j", "$(id)", "a\nb",
                     "16G", "1.5G", "0", "-1", "99999999999999999999T", "1-00:00:00",
                     "30:61", "a100:2", ":2", "a100:", "gpu:a100:2", "a&b|c", "[a*2]"])


def clean(call, *args, **kwargs):
    """Run ``call``; a refusal must be InvalidInput with a one-line message."""
    try:
        return call(*args, **kwargs)
    except InvalidInput as exc:
        message = str(exc).strip()
        assert message and "\n" not in message, repr(message)  # one line for the person
        return None


@FUZZ
@given(TEXT)
def test_name_and_reference_parsers(text):
    from gateway.common import specs

    clean(specs.check_name, text, "algorithm")
    clean(specs.check_image_name, text)
    clean(specs.parse_version_ref, text, "dataset")
    clean(specs.parse_size_mib, text, "--mem", 16)
    clean(specs.parse_time_seconds, text)
    clean(specs.parse_gpus, text)
    clean(specs.parse_env, [text], {})
    clean(specs.parse_params, [text])


@FUZZ
@given(st.lists(TEXT, max_size=4), st.lists(TEXT, max_size=3))
def test_recipe_parsers(sets, sweeps):
    from gateway.jobs import recipes

    values = clean(recipes.parse_sets, sets) or {}
    clean(recipes.parse_sweeps, sweeps)
    clean(recipes.fill, tuple(sets), values)


@FUZZ
@given(st.dictionaries(st.sampled_from(["cpus", "gpus", "mem", "shm", "time", "partition",
                                        "account", "qos", "constraint", "exclusive"]),
                       st.none() | st.integers(-5, 10**6) | TEXT | st.booleans()))
def test_resource_parser(given_values):
    from gateway.common.specs import parse_resources

    defaults = {"cpus": 1, "gpus": 0, "mem": "2G", "shm": "64M", "time": "1:00:00",
                "partition": ""}
    try:
        clean(parse_resources, defaults=defaults, **{k: v for k, v in given_values.items()})
    except (TypeError, ValueError) as exc:  # a wrong Python type never comes from the CLI
        assert not isinstance(exc, InvalidInput)


@FUZZ
@given(st.binary(max_size=400) | st.builds(lambda d: json.dumps(d).encode(),
                                           st.dictionaries(TEXT, st.none() | st.integers()
                                                           | TEXT | st.booleans(),
                                                           max_size=12)))
def test_spool_record_parser(content):
    from spool.format import SpoolFormatError, parse_record

    with contextlib.suppress(SpoolFormatError):
        parse_record(content.decode("utf-8", "replace"))


MEMBER = st.tuples(
    st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "chardev"]),
    TEXT | st.sampled_from(["manifest.json", "index.json", "blobs/sha256/" + "a" * 64,
                            "layer.tar", "../escape", "/abs", "a/../../b"]),
    TEXT | st.sampled_from(["../../etc/passwd", "/etc/shadow", "layer.tar"]),
    st.binary(max_size=64) | st.sampled_from([b'[{"Config": "c.json", "Layers": ["l"]}]',
                                              b"{}", b"[]", b"not json"]),
    st.sampled_from([0o644, 0o4755, 0o2755, 0o777]))
TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chardev": tarfile.CHRTYPE}


def _tar(members) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target, data, mode in members:
            info = tarfile.TarInfo(name or "x")
            info.type = TYPES[kind]
            info.mode = mode
            if kind in ("symlink", "hardlink"):
                info.linkname = target
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out.getvalue()


@FUZZ
@given(st.lists(MEMBER, max_size=6), st.booleans())
def test_image_archive_reader(members, truncate):
    from containers.archive import check_layers, read_archive

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.tar"
        data = _tar(members)
        path.write_bytes(data[: len(data) // 2] if truncate else data)
        before = sorted(os.listdir(tmp))
        archive = clean(read_archive, path)
        if archive is not None:
            clean(check_layers, archive)
        assert sorted(os.listdir(tmp)) == before  # reading writes nothing


@FUZZ
@given(st.lists(st.tuples(TEXT | st.sampled_from(["../x", "/abs", "a/", "a", "a/b",
                                                  "dir\\..\\..\\x"]),
                          st.binary(max_size=32), st.sampled_from([0, 0o120777 << 16,
                                                                   0o100755 << 16])),
                max_size=6), st.booleans())
def test_zip_reader(members, truncate):
    from gateway.stores.sources import UploadLimits, scan_zip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "code.zip"
        out = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as archive:
            warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
            for name, data, attr in members:
                info = zipfile.ZipInfo(name or "x")
                info.external_attr = attr
                archive.writestr(info, data)
        data = out.getvalue()
        path.write_bytes(data[: len(data) // 2] if truncate else data)
        clean(scan_zip, path, UploadLimits(max_bytes=1 << 20, max_zip_ratio=200.0))
        assert sorted(os.listdir(tmp)) == ["code.zip"]
