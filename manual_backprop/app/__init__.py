"""The application on top of the derivations: MNIST data, checkpoints, the training loop and
the command line. The only part of ``manual_backprop`` that reads or writes files, and, at
the command line, the only place that knows both backends.

    >>> from manual_backprop.app import load_mnist, train
    >>> result = train()                      # the default recipe on the shipped MNIST
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_mnist, read_idx
from .training import train

__all__ = ["Dataset", "load_checkpoint", "load_mnist", "read_idx", "save_checkpoint", "train"]
