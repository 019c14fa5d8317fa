"""Where to run: one rule for every place that picks a device (run options, both training
loops, the patched host loop, the bypass pipeline)."""
import torch


def cuda_available():
    return torch.cuda.is_available()


def choose_device(choice=None):
    """``choice`` None or 'auto': CUDA when there is a CUDA device, else the CPU; anything else
    ('cpu', 'cuda', 'cuda:1', a torch.device) as given."""
    if choice is None or choice == 'auto':
        return torch.device('cuda' if cuda_available() else 'cpu')
    return torch.device(choice)
