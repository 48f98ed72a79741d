"""The container paths every gateway job sees, listed once.

Job kinds bind host directories onto these; the image conversion (containers/rootfs.py)
creates them in every image, because bubblewrap cannot create a bind target inside a
read-only image.
"""

CODE = "/code"         # the algorithm: a private writable copy (training), a draft (notebook)
DATASET = "/dataset"   # the dataset version, read-only
MODEL = "/model"       # empty and writable; harvested into the model store

JOB_MOUNT_TARGETS = (CODE, DATASET, MODEL)
