"""CRNN recognizer: a small CNN over a grey crop, a BiLSTM over columns, CTC logits.

Pure ``nn.Module``: tensors in, logits out. Also an orientation head that says
whether the crop is upside down (used by the predictor, not by CTC).

Optional adapters (``ModelConfig.adapter`` > 0): a small residual branch (3x3 conv down to
``adapter`` channels, ReLU, 1x1 conv back up) after four stages of the CNN. They are how a
fine-tune adds capacity for a new kind of print without moving the weights the old kinds
rely on (``recognizer.finetune``, ``trainable="adapter"``): the up-projections start at
zero, so a model with fresh adapters reads exactly as it did without them, and
``forward(x, adapters=False)`` (``BasePath``) still reads as it did before they were trained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class ModelConfig:
    """Constructor args, saved with every checkpoint."""

    num_classes: int
    img_height: int = 32
    channels: tuple[int, ...] = (32, 64, 96, 128)
    hidden: int = 128
    dropout: float = 0.1
    adapter: int = 0               # bottleneck channels of the adapters (0: none)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def _conv(cin: int, cout: int, stride: tuple[int, int] = (1, 1)) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


# after which ``cnn`` layers an adapter sits (the first conv block, and the end of each resolution)
ADAPTER_AT = (0, 1, 4, 7)


class Adapter(nn.Module):
    """Residual branch ``x + up(relu(down(x)))``; ``up`` starts at zero (an identity)."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, bottleneck, 3, 1, 1)
        self.up = nn.Conv2d(bottleneck, channels, 1)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


class CRNN(nn.Module):
    """(B, 1, 32, W) in [0, 1]-normalised grey -> CTC logits (T=W/4, B, C) + orientation (B,)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.img_height != 32:
            raise ValueError("this backbone expects img_height=32")
        self.cfg = cfg
        c0, c1, c2, c3 = cfg.channels
        self.cnn = nn.Sequential(
            _conv(1, c0, (2, 2)),                 # 32 x W -> 16 x W/2
            _conv(c0, c1), nn.MaxPool2d(2, 2),    # -> 8 x W/4
            _conv(c1, c2), _conv(c2, c2),
            nn.MaxPool2d((2, 1), (2, 1)),         # -> 4 x W/4
            _conv(c2, c3), _conv(c3, c3),
            nn.MaxPool2d((2, 1), (2, 1)),         # -> 2 x W/4
            nn.Conv2d(c3, c3, (2, 1), bias=False), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),  # -> 1 x W/4
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = nn.LSTM(c3, cfg.hidden, num_layers=1, bidirectional=True)
        self.fc = nn.Linear(2 * cfg.hidden, cfg.num_classes)
        self.orient = nn.Linear(c3, 1)
        if cfg.adapter > 0:             # each sits after a conv block, with that block's output channels
            self.adapters = nn.ModuleList(Adapter(self.cnn[i][0].out_channels, cfg.adapter) for i in ADAPTER_AT)

    def features(self, x: torch.Tensor, adapters: bool = True) -> torch.Tensor:
        """``adapters=False``: the base path, as if the model had none."""
        if self.cfg.adapter > 0 and adapters:
            k = 0
            for i, layer in enumerate(self.cnn):
                x = layer(x)
                if i in ADAPTER_AT:
                    x = self.adapters[k](x)
                    k += 1
            f = x
        else:
            f = self.cnn(x)                     # B x C x 1 x T
        return f.squeeze(2).permute(2, 0, 1)    # B x C x T -> T x B x C

    def forward(self, x: torch.Tensor, adapters: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (log-probs T x B x K, upside-down logit B); ``adapters=False``: the base path."""
        seq = self.features(x, adapters)        # T x B x C
        orient = self.orient(seq.mean(0)).squeeze(-1)
        out, _ = self.rnn(self.dropout(seq))    # T x B x 2H
        logits = self.fc(self.dropout(out))     # T x B x K
        return logits.log_softmax(-1), orient


class BasePath(nn.Module):
    """``model`` read without its adapters (what it read before they were added), for export."""

    def __init__(self, model: CRNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x, adapters=False)
