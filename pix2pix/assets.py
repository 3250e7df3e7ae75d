"""Where the repository's bundled files live: the default weights and the example label maps."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: The bundled files: in an installed wheel the copy inside the package (pyproject.toml maps assets/ there), in a
#: checkout the repository's assets/ beside the packages.
ASSETS_DIR = _PACKAGE / "_assets" if (_PACKAGE / "_assets" / "weights").is_dir() else _PACKAGE.parent / "assets"
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
