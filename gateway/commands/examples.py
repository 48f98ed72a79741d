"""An example for every command's --help (shown as its epilog), in one table.

tests/unit/test_cli_root.py checks that every command has one and that each example
parses with the command's own options.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "algo push": ("gw algo push detectron2.zip --name detectron2 --framework PyTorch",),
    "algo list": ("gw algo list", "gw algo list --shared"),
    "algo versions": ("gw algo versions detectron2", "gw algo versions alice:detectron2"),
    "algo show": ("gw algo show detectron2@v2 --json",),
    "algo rm": ("gw algo rm detectron2@v1",),
    "algo share": ("gw algo share detectron2 --group vision",),
    "algo unshare": ("gw algo unshare detectron2",),
    "data push": ("gw data push MSCOCO2017.zip --name coco",),
    "data list": ("gw data list", "gw data list --shared --json"),
    "data versions": ("gw data versions coco",),
    "data show": ("gw data show coco@v3",),
    "data rm": ("gw data rm coco@v1",),
    "data share": ("gw data share coco --group vision",),
    "data unshare": ("gw data unshare coco",),
    "image import": ("gw image import detectron2.tar --name detectron2:v1",
                     "gw image import detectron2.tar --name detectron2:v1 --wait --cpus 8",
                     "gw image import detectron2.tar --name detectron2:v1 --here"),
    "image pull": ("gw image pull localhost:5000/team/det:1.0 --name det:1.0 --insecure",),
    "image list": ("gw image list --json",),
    "image show": ("gw image show detectron2:v1",),
    "image logs": ("gw image logs detectron2:v1",),
    "image rm": ("gw image rm detectron2:v1",),
    "image publish": ("gw image publish pytorch:2.1",),
    "image unpublish": ("gw image unpublish pytorch:2.1",),
    "job submit": ("gw job submit --algo detectron2 --image detectron2:v1 --data coco "
                   "--gpus 1 -- python tools/train_net.py",
                   "gw job submit --algo llm --image pytorch:2.4 --nodes 2 --gpus-per-node 4 "
                   "-- python train.py",
                   "gw job submit --algo llm --image pytorch:2.4 --nodes 2 --gpus-per-node 8 "
                   "--launcher torchrun -- torchrun --nproc-per-node 8 train.py"),
    "job list": ("gw job list --state RUNNING --limit 20",),
    "job show": ("gw job show 12", "gw job show 12 --json"),
    "job script": ("gw job script 12",),
    "job logs": ("gw job logs 12 -f", "gw job logs 12 --task 1"),
    "job cancel": ("gw job cancel 12",),
    "job outputs": ("gw job outputs 12 -o outputs.tar.gz",),
    "job rerun": ("gw job rerun 12 --mem 32G",),
    "job render": ("gw job render --algo det --image det:v1 -o train.sbatch -- python t.py",),
    "job top": ("gw job top 12 --follow", "gw job top 12 --task 1"),
    "model list": ("gw model list", "gw model list --shared"),
    "model versions": ("gw model versions detectron2",),
    "model show": ("gw model show detectron2@v2",),
    "model files": ("gw model files detectron2@v2",),
    "model cat": ("gw model cat detectron2@v2 metrics.json",),
    "model download": ("gw model download detectron2@v2 -o model.tar.gz",),
    "model share": ("gw model share detectron2 --group vision",),
    "model unshare": ("gw model unshare detectron2",),
    "notebook start": ("gw notebook start --image jupyter:v1 --algo detectron2 --wait",),
    "notebook show": ("gw notebook show 12",),
    "notebook list": ("gw notebook list",),
    "notebook save": ("gw notebook save 12",),
    "notebook stop": ("gw notebook stop 12 --wait",),
    "recipe save": ("gw recipe save train --from-job 12",),
    "recipe list": ("gw recipe list",),
    "recipe show": ("gw recipe show train",),
    "recipe rm": ("gw recipe rm train",),
    "recipe run": ("gw recipe run train --set lr=0.01",),
    "sbatch-template import": ("gw sbatch-template import mysite.sh.j2 --name mysite",),
    "sbatch-template list": ("gw sbatch-template list",),
    "sbatch-template rm": ("gw sbatch-template rm mysite",),
    "template save": ("gw template save train --from-job 12",),
    "template list": ("gw template list",),
    "template show": ("gw template show train",),
    "template rm": ("gw template rm train",),
    "template run": ("gw template run train --set lr=0.01",),
    "template import": ("gw template import mysite.sh.j2 --name mysite",),
    "template scripts": ("gw template scripts",),
    "template rm-script": ("gw template rm-script mysite",),
    "spool sync": ("gw spool sync --json",),
    "spool watch": ("gw spool watch",),
    "ood install": ("gw ood install ~/ondemand/dev --cluster mycluster",),
    "web": ("gw web --port 8642",),
    "completion": ('eval "$(gw completion bash)"',),
    "config": ("gw config --json",),
    "doctor": ("gw doctor",),
    "flavors": ("gw flavors --json",),
}


def epilog(path: str) -> str | None:
    """The --help epilog of the command ``path`` ("job submit"), or None."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    return "\b\nExamples:\n" + "\n".join(f"  {example}" for example in examples)
