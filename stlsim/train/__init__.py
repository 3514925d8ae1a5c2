"""Training: learning modes STL/SL/TL, optimizers, the loop, run records."""
from ..data.encoding import encode
from .loop import ENCODINGS, NetConfig, RunResult, TrainConfig, build_network, evaluate, train
from .modes import MODES, trainable_names
from .optim import SGD, Adam, ExponentialDecay

__all__ = ["ENCODINGS", "NetConfig", "RunResult", "TrainConfig", "build_network", "encode", "evaluate",
           "train", "MODES", "trainable_names", "Adam", "SGD", "ExponentialDecay"]
