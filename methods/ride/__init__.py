"""RIDE (multi-expert LDAM-DRW with a diversity term) and RIDE-EA (its expert-assignment router), with the
multi-expert CIFAR ResNet (:mod:`.experts`) and the router (:mod:`.router`) they alone use."""
