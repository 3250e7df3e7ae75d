"""Where the repository's bundled files live: the default weights and the example label maps."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
#: The weights bundled with the repository (written by ``save_pretrained``; trained by ``python -m train``).
BUNDLED_WEIGHTS = ASSETS_DIR / "weights"
#: Label maps from the facades test split (``testNNN_<what>.png``) with their photos (``..._photo.jpg``).
EXAMPLES_DIR = ASSETS_DIR / "examples"


def example_labels() -> list[Path]:
    """The example label maps, sorted by name."""
    return sorted(p for p in EXAMPLES_DIR.glob("*.png") if not p.stem.endswith("_photo"))


def example_photo(label_path: Path) -> Path:
    """The real photo that goes with an example label map."""
    return label_path.with_name(f"{label_path.stem}_photo.jpg")
