"""Test-wide settings.

The test clips are tiny (about 128x96): one torch thread is as fast as two there and cannot
stall on a busy machine, where two OpenMP threads on two shared cores wait on each other.
"""

import torch

torch.set_num_threads(1)
