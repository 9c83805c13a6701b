"""``ltbench bench compare``: one training epoch of ResNet-32 on the same real CIFAR-LT images, side by side,
same batch size and CPU threads (issue 10):

- conventional: what LT repositories do — PIL images, torchvision RandomCrop(32, 4) + flip + ToTensor +
  Normalize per image in a DataLoader, default memory format, fp32, SGD;
- ltbench: ``ltbench.run.execute`` of ``ce`` for one epoch (device-resident uint8 data, batched crop/flip,
  channels_last, the trainer's step) at each requested precision; its images/s is the trainer's own
  stage timing, so it is exactly what a real run sees.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def conventional_epoch(data, batch_size: int, workers: int, max_images: int | None = None) -> float:
    """Images/s of one epoch of the per-image PIL + torchvision + DataLoader loop every LT repository uses."""
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from ltbench.models.backbones import build_backbone
    from ltbench.models.heads import linear_classifier

    n = len(data.train_y) if max_images is None else min(max_images, len(data.train_y))
    images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in data.train_x[:n]]
    labels = data.train_y[:n].tolist()
    tf = transforms.Compose(
        [
            transforms.RandomCrop(data.image_size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )

    class PILDataset(Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            return tf(images[i]), labels[i]

    loader = DataLoader(PILDataset(), batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=False)
    torch.manual_seed(0)
    model = linear_classifier(build_backbone("resnet32", data.image_size), data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    model.train()
    t0 = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def ltbench_epoch(args: argparse.Namespace, precision: str) -> float:
    """Images/s of one real ``ltbench run`` epoch (trainer stage timing), in a temporary output folder."""
    from ltbench.config import RunConfig
    from ltbench.run import execute

    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(
            method="ce",
            dataset=args.dataset,
            data_root=args.data_root,
            epochs=1,
            hparams={"batch_size": args.batch_size},
            precision=precision,
            device="cpu",
            threads=args.threads,
            eval_every=0,
            out=out,
        )
        rec = execute(cfg, progress=False)
    [stage] = rec["timing"]["stages"].values()
    return stage["images_per_s"]


def run_compare(args: argparse.Namespace) -> list[list]:
    """Rows (loop, precision, images/s, ratio to the conventional loop)."""
    from ltbench.config import RunConfig
    from ltbench.run import load_data
    from ltbench.train.runtime import configure_threads

    threads = configure_threads(args.threads)
    data = load_data(RunConfig(dataset=args.dataset, data_root=args.data_root))
    conv = conventional_epoch(data, args.batch_size, args.workers)
    rows = [[f"conventional: PIL + torchvision + DataLoader ({args.workers} workers)", "fp32", conv, 1.0]]
    for precision in ("fp32", "bf16") if args.precision == "both" else (args.precision,):
        speed = ltbench_epoch(args, precision)
        rows.append(["ltbench: device-resident batches + trainer step", precision, speed, speed / conv])
    print(
        f"ResNet-32, batch {args.batch_size}, {threads} threads, one epoch of {data.name} ({len(data.train_y)} images)"
    )
    return rows
