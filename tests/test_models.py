import torch

from ltbench.models.backbones import build_backbone
from ltbench.models.cifar_resnet import resnet32
from ltbench.registry import BACKBONES


def test_resnet32_parameter_count():
    # LDAM-DRW's resnet32: 0.46 M parameters (docs/protocol.md §0.5); 464,154 with a 10-class linear head
    model = resnet32(10)
    assert sum(p.numel() for p in model.parameters()) == 464_154
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet32_structure_option_a():
    model = resnet32(100)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31  # 31 conv + 1 FC layer, no projection shortcuts
    assert all(c.bias is None for c in convs)


def test_every_backbone_returns_pooled_features():
    for name in BACKBONES.names():
        net = build_backbone(name, 32)
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, net.feature_dim)
