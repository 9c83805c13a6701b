"""Write the CIFAR-10-LT training subset (IR 100, the ``ldam`` rule) plus the full test set as an image-folder
copy, for a machine that cannot receive the whole dataset (the GPU check's 64 MiB transfer limit).

The copy holds exactly the n_c selected files of every class (5000 ... 50, 12,406 in all) under their original
names, so ``ltbench run --dataset cifar10_lt`` on it keeps every image (the rule keeps all n_c of a pool of n_c)
and trains on the same images as a run on the whole copy; only the within-class order (and so the batches)
differs. Usage: python slurm/gpu/cifar10_lt_copy.py SRC_ROOT OUT_TAR_GZ   (SRC_ROOT holds cifar10/{train,test})
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np

from ltbench.data.cifar import list_image_folder
from ltbench.data.longtail import class_counts, select_indices


def main(src: Path, out: Path) -> None:
    classes, files = list_image_folder(src / "cifar10" / "train", 10)
    labels = np.concatenate([np.full(len(f), c) for c, f in enumerate(files)])
    flat = [p for f in files for p in f]
    keep = select_indices(labels, class_counts(5000, 10, 100), "ldam")
    with tarfile.open(out, "w:gz") as tar:
        for i in keep:
            tar.add(flat[i], arcname=str(Path(flat[i]).relative_to(src)))
        tar.add(src / "cifar10" / "test", arcname="cifar10/test")
    print(f"{out}: {len(keep)} training images of {len(flat)}, {classes[0]}..{classes[-1]}, plus the test set")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
