"""facade-pix2pix: paint a CMP facade label map, get a photo-like facade (pix2pix, Isola et al. 2017).

>>> from pix2pix import Pix2Pix
>>> model = Pix2Pix.load()                    # bundled weights, $PIX2PIX_WEIGHTS, a folder, repo id or .pth
>>> facades = model.generate("labels.png", seed=0, num_samples=4)
>>> labels = parse_photo("building.jpg")        # or start from a photo: read into a label map to edit
"""

from .assets import BUNDLED_WEIGHTS, EXAMPLES_DIR, example_labels, example_photo
from .device import default_device, resolve_device
from .images import MAX_PIXELS, load_image
from .layout import random_layout
from .models import PatchDiscriminator, UnetGenerator, init_weights
from .official import load_official_checkpoint
from .palette import CLASS_NAMES, CLASSES, NUM_CLASSES, PALETTE, index_to_rgb, rgb_to_index, snap_to_palette
from .parser import PhotoParser, parse_photo
from .predictor import Pix2Pix, WeightsNotFoundError, load_generator
from .seeds import MAX_SEED, check_seed

__all__ = [
    "BUNDLED_WEIGHTS", "CLASSES", "CLASS_NAMES", "EXAMPLES_DIR", "MAX_PIXELS", "MAX_SEED", "NUM_CLASSES", "PALETTE",
    "PatchDiscriminator", "PhotoParser", "Pix2Pix", "UnetGenerator", "WeightsNotFoundError", "default_device",
    "example_labels", "example_photo", "index_to_rgb", "init_weights", "load_generator", "load_image",
    "check_seed", "load_official_checkpoint", "parse_photo", "random_layout", "resolve_device", "rgb_to_index",
    "snap_to_palette",
]
