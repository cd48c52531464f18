"""CRNN recognizer: a small CNN over a grey crop, a BiLSTM over columns, CTC logits.

Pure ``nn.Module``: tensors in, logits out. Also an orientation head that says
whether the crop is upside down (used by the predictor, not by CTC).
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)                         # B x C x 1 x T
        return f.squeeze(2).permute(2, 0, 1)    # B x C x T -> T x B x C

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (log-probs T x B x K, upside-down logit B)."""
        seq = self.features(x)                  # T x B x C
        orient = self.orient(seq.mean(0)).squeeze(-1)
        out, _ = self.rnn(self.dropout(seq))    # T x B x 2H
        logits = self.fc(self.dropout(out))     # T x B x K
        return logits.log_softmax(-1), orient
