"""The recipe script's data plumbing with DataLoader worker processes (``--workers``)."""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.data import reseed_augmentations, train_augmentations
from scripts.train_default import Shifting


class Index(Dataset):
    def __init__(self):
        self.augment = train_augmentations(1.0, seed=0)

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        return i


def test_shifting_moves_in_persistent_workers():
    # Persistent workers keep their own copy of the dataset: a plain attribute offset moved in
    # the main process would hand every epoch the same images.
    ds = Shifting(Index(), 8)
    dl = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    first = sorted(torch.cat(list(dl)).tolist())
    ds.next_epoch()
    second = sorted(torch.cat(list(dl)).tolist())
    assert first == list(range(8))
    assert second == list(range(8, 16))


def test_reseed_reaches_the_augmentations_inside_shifting():
    # Workers reseed every pipeline they can find; one hidden inside Shifting would repeat
    # the same draws in every worker.
    ds = Shifting(Index(), 8)
    grey = np.full((24, 94, 3), 128, dtype=np.uint8)
    runs = []
    for _ in range(2):
        reseed_augmentations(ds, 123)
        runs.append([ds.dataset.augment(image=grey)["image"] for _ in range(3)])
    assert all((x == y).all() for x, y in zip(*runs))
