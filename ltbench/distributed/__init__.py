"""One run on several devices: torch.distributed process group, DDP around the training step, global sample
orders sharded over the ranks, gathered contrastive losses, launch by torchrun or SLURM tasks (README "Multi-GPU")."""

from ltbench.distributed.gather import gather_rows, gather_views, gather_with_grad
from ltbench.distributed.world import SINGLE, World, env_world

__all__ = ["SINGLE", "World", "env_world", "gather_rows", "gather_views", "gather_with_grad"]
