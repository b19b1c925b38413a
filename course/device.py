"""The device grading computes references on: CUDA when available, else the CPU."""

import os

import torch

DEVICE_ENV = "AUTOGRAD_LABS_DEVICE"


def grading_device() -> torch.device:
    """Return the device named by $AUTOGRAD_LABS_DEVICE, else CUDA if present, else CPU."""
    choice = os.environ.get(DEVICE_ENV, "").strip()
    if not choice:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{DEVICE_ENV}={choice!r} but torch sees no CUDA device")
    return device
