"""Reading a photo of a facade into a label map: the facade parser (photo -> the 12 CMP classes).

The generator draws photos from label maps; this goes the other way, so that a person with a photo of a real
building can start from it: its windows, doors and shop fronts as a map they can repaint. The network is a
small U-Net trained from scratch on the 400 training photos (``python -m train.parser``; weights in
``assets/parser``). Its raw per-pixel classes are noisy, so ``rectangles`` turns them into the map a person
would paint: every element (window, door, balcony, shop ...) an axis-aligned rectangle, the facade and the
background the fill.

Loading only loads: ``FacadeParser.load`` reads the weights and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .assets import ASSETS_DIR
from .images import SIZE
from .palette import NUM_CLASSES

PARSER_DIR = ASSETS_DIR / "parser"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# ----------------------------------------------------------------------------------------------- network
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


def level_channels(width: int, levels: int, cap: int) -> list[int]:
    """Channels per level: ``width`` doubling, at most ``cap`` (the deep levels see 16x16 and 8x8 cells)."""
    return [min(width * 2**k, cap) for k in range(levels)]


class ParserNet(nn.Module):
    """A U-Net that works at half the photo's side: a strided stem (256 -> 128), ``levels`` levels down to
    8x8 (a whole floor in one cell: a window is told from a shop by what is around it), and the logits
    upsampled back (bilinear) to the photo's side. Half the side costs a quarter of the compute and loses
    little: the classes are rectangles several pixels wide, and they are redrawn as rectangles anyway."""

    def __init__(self, width: int = 24, levels: int = 5, cap: int = 128):
        super().__init__()
        self.width, self.levels, self.cap = width, levels, cap
        chans = level_channels(width, levels, cap)
        self.stem = nn.Sequential(nn.Conv2d(3, chans[0], 4, 2, 1, bias=False), nn.BatchNorm2d(chans[0]),
                                  nn.ReLU(True))
        self.down = nn.ModuleList([_block(chans[0], chans[0])] + [_block(chans[k - 1], chans[k])
                                                                   for k in range(1, levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[k], chans[k - 1], 2, stride=2)
                                 for k in range(levels - 1, 0, -1)])
        self.merge = nn.ModuleList([_block(2 * chans[k - 1], chans[k - 1]) for k in range(levels - 1, 0, -1)])
        self.head = nn.Conv2d(chans[0], NUM_CLASSES, 1)

    def config(self) -> dict:
        return {"width": self.width, "levels": self.levels, "cap": self.cap, "size": SIZE}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) photos in [-1, 1] (H, W divisible by 2**levels) -> (N, 12, H, W) logits."""
        size = x.shape[-2:]
        x = self.stem(x)
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return F.interpolate(self.head(x).float(), size=size, mode="bilinear", align_corners=False)


def save_parser(net: ParserNet, folder: Path, info: dict | None = None) -> Path:
    """``model.safetensors`` (float16: half the size, the same argmax to within a few pixels) and ``config.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps({**net.config(), **(info or {})}, indent=2) + "\n")
    return folder


def load_parser_net(folder: Path | str = PARSER_DIR) -> ParserNet:
    """The network saved in ``folder`` (float32, eval mode); a ``FileNotFoundError`` naming what is missing."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"no facade parser in {folder} ({name} is missing): train one with "
                                    f"python -m train.parser --data <facades>")
    config = json.loads((folder / CONFIG_NAME).read_text())
    net = ParserNet(config["width"], config["levels"], config["cap"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
    net.load_state_dict(state)
    return net.eval()

