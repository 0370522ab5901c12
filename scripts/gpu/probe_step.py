"""Seconds per training step (data + forward + backward + Adam) for a batch/patch/precision, on real pairs.

Used to size a time-boxed schedule: ``--steps`` = the time available / this.
    python scripts/gpu/probe_step.py DATA BATCH PATCH PRECISION
"""
from __future__ import annotations

import sys
import time

import torch

from pcnet_ros.core.engine import resolve_device
from pcnet_ros.core.model import PCNet
from pcnet_ros.training.losses import PCNetLoss
from pcnet_ros.training.pairs import list_pairs, load_pairs, PatchSampler
from pcnet_ros.training.train import to_device_batch, train_step


def main(data: str, batch: int, patch: int, precision: str) -> float:
    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    sampler = PatchSampler(load_pairs(list_pairs(data)[:40]), patch)
    model = PCNet().to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = PCNetLoss().to(device)
    times = []
    for _ in range(25):
        t0 = time.perf_counter()
        rainy, clean = (to_device_batch(a, device) for a in sampler.sample(batch))
        train_step(model, opt, loss_fn, rainy, clean, precision).item()
        times.append(time.perf_counter() - t0)
    return sorted(times[5:])[len(times[5:]) // 2]


if __name__ == "__main__":
    d, b, p, prec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    s = main(d, b, p, prec)
    print(f"{s:.4f}")
