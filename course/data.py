"""Small data sets the labs use."""

import torch

# Eleven thermometer readings of the same temperatures: t_c in degrees Celsius, t_u on an
# unknown scale.
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]


def thermometer(dtype=torch.float32, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Features X (11, 2): each t_c with a constant 1 beside it; targets y (11,): t_u."""
    features = [[celsius, 1.0] for celsius in T_C]
    return torch.tensor(features, dtype=dtype, device=device), torch.tensor(T_U, dtype=dtype, device=device)
