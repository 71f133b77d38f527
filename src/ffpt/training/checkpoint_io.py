"""Lightning checkpoints written through :mod:`ffpt.fileio`: a temporary file in the checkpoint's own
folder, fsync, rename.

Lightning's own :class:`TorchCheckpointIO` writes through an fsspec transaction, whose temporary file
lies in the system temp directory and is moved into place: across file systems the move is a copy,
and a full disk leaves a truncated ``best.ckpt``. Here a failed write (full disk, read-only folder)
raises an ``OSError`` naming the checkpoint and leaves the previous file intact.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ffpt.fileio import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves like :class:`TorchCheckpointIO` (same file content), atomically in the destination folder;
    loading and removal are Lightning's."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)
