"""Training: learning modes STL/SL/TL (and the ANN baseline), optimizers, the loop, run records."""
from ..data.encoding import encode
from .config import ENCODINGS, NetConfig, RunResult, TrainConfig, build_network
from .loop import evaluate, train
from .modes import MODES, trainable_names
from .optim import SGD, Adam, ExponentialDecay

__all__ = ["ENCODINGS", "NetConfig", "RunResult", "TrainConfig", "build_network", "encode", "evaluate",
           "train", "MODES", "trainable_names", "Adam", "SGD", "ExponentialDecay"]
