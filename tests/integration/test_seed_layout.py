"""The seed's layout: a zip with one top folder keeps it.

The web platform's guide uploads detectron2.zip (top folder detectron2/) and runs
`python /code/detectron2/tools/train_net.py`, with MSCOCO2017.zip read at
/dataset/MSCOCO2017/train2017. The same paths must work in a gateway job.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container

TRAIN = """#!/bin/sh
# stands in for tools/train_net.py: reads the dataset where the seed reads it
ls /dataset/MSCOCO2017/train2017 > /model/seen.txt
cat /dataset/MSCOCO2017/annotations/instances_train2017.json >> /model/seen.txt
pwd >> /model/seen.txt
"""


def test_seed_zips_keep_their_top_folder_in_jobs(flow_home, tmp_path):
    from tests.support.images import busybox_rootfs, make_archive

    env = flow_home
    archive = make_archive(tmp_path / "bb.tar", [busybox_rootfs(tmp_path / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(env, "image", "import", str(archive), "--name", "detectron2:v1", "-q")
    code = tmp_path / "detectron2.zip"
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("detectron2/", "")
        zf.writestr("detectron2/tools/train_net.sh", TRAIN)
        zf.writestr("detectron2/configs/mask_rcnn.yaml", "lr: 0.02\n")
    data = tmp_path / "MSCOCO2017.zip"
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("MSCOCO2017/train2017/000000000009.jpg", b"\xff\xd8jpeg")
        zf.writestr("MSCOCO2017/annotations/instances_train2017.json", '{"images": []}\n')
    gw_ok(env, "algo", "push", str(code), "--name", "detectron2", "-q")
    gw_ok(env, "data", "push", str(data), "--name", "coco", "-q")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--wait", "--algo", "detectron2",
                           "--image", "detectron2:v1", "--data", "coco", "--mem", "64M",
                           "--", "sh", "/code/detectron2/tools/train_net.sh"))
    assert job["state"] == "COMPLETED", job
    seen = gw_ok(env, "model", "cat", job["model"], "seen.txt").splitlines()
    assert seen == ["000000000009.jpg", '{"images": []}', "/code"]
