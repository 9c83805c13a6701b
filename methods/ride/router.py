"""RIDE's expert-assignment (EA) router (Wang et al., ICLR 2021, §3.3; docs/methods.md §5 "Optional stage 2").

After the experts are trained, a small router decides per image whether consulting one more expert is
worth it. For expert i < E-1 it sees the top-K entries of the running ensemble of experts 0..i (their
logits averaged) and a 16-d ReLU map of expert i's L2-normalised pooled feature, and outputs one logit:
"ask expert i+1". The training target is "the ensemble so far is wrong and some larger ensemble is right".
At test time an image stops at the first router that says no (sigmoid ≤ 0.5).

Source: frank-xwang/RIDE-LongTailRecognition ``model/ldam_drw_resnets/ea_resnet_cifar.py`` (the hidden maps
are per expert, the final 1-logit layer is shared: ``share_expert_help_pred_fc=True``) and
``configs/config_imbalance_cifar100_ride_ea.json`` (K = 30, pos_weight 100).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ROUTER_HIDDEN = 16  # expert_hidden_fc_output_dim = 16 (ea_resnet_cifar.py)


class Routing(NamedTuple):
    """A routed prediction: logits averaged over the experts each image used, and how many it used."""

    logits: torch.Tensor  # B x C
    experts_used: torch.Tensor  # B, integers in 1..E


class ExpertRouter(nn.Module):
    """E-1 routers sharing their output layer; ``forward`` gives the B x (E-1) "ask the next expert" logits."""

    def __init__(self, num_experts: int, feature_dim: int, num_classes: int, top_k: int = 30) -> None:
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"a router needs at least 2 experts, got {num_experts}")
        self.top_k = min(top_k, num_classes)  # K = 30 is a CIFAR-100 value; 10 classes allow at most 10
        self.hidden = nn.ModuleList(nn.Linear(feature_dim, ROUTER_HIDDEN) for _ in range(num_experts - 1))
        self.out = nn.Linear(ROUTER_HIDDEN + self.top_k, 1)

    def forward(self, expert_logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``expert_logits`` E x B x C (s-scaled), ``features`` E x B x d -> B x (E-1) router logits."""
        running = running_ensembles(expert_logits)
        preds = []
        for i, hidden in enumerate(self.hidden):
            feat = F.relu(hidden(F.normalize(features[i].float(), dim=1)))
            top = running[i].topk(self.top_k, dim=1).values
            preds.append(self.out(torch.cat((top, feat), dim=1)).squeeze(1))
        return torch.stack(preds, dim=1)


def running_ensembles(expert_logits: torch.Tensor) -> torch.Tensor:
    """E x B x C: entry i is the mean of the logits of experts 0..i."""
    counts = torch.arange(1, expert_logits.shape[0] + 1, device=expert_logits.device).view(-1, 1, 1)
    return expert_logits.float().cumsum(0) / counts


def router_targets(expert_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """B x (E-1) float targets: 1 where the ensemble of experts 0..i is wrong but one of 0..j (j > i) is right."""
    correct = running_ensembles(expert_logits).argmax(-1) == targets.unsqueeze(0)  # E x B
    later_right = correct.flip(0).cummax(0).values.flip(0)  # any(correct[j] for j >= i)
    return (~correct[:-1] & later_right[1:]).t().float()


def route(expert_logits: torch.Tensor, router_logits: torch.Tensor) -> Routing:
    """Test-time routing: image b uses experts 0..n_b-1, n_b = 1 + the number of leading routers saying yes.

    All experts are computed here (batched); only the prediction and the count follow the router, so the
    reported experts_used is what a sequential implementation would spend, and the logits are identical.
    """
    go_on = (torch.sigmoid(router_logits.float()) > 0.5).t()  # (E-1) x B
    used = 1 + go_on.long().cumprod(0).sum(0)  # B
    running = running_ensembles(expert_logits)  # E x B x C
    logits = running.gather(0, (used - 1).view(1, -1, 1).expand(1, *running.shape[1:])).squeeze(0)
    return Routing(logits, used)
