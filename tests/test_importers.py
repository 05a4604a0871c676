"""Official checkpoints are recognised by their content (never their suffix) through the families' sniffers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import aware3d
from aware3d.cli.main import main
from aware3d.io.sniff import summarize_bytes, summarize_file
from aware3d.models import registry
from aware3d.models.registry import (
    FamilySpec,
    Importer,
    NoImporterError,
    TinyPresets,
    find_importer,
)

from .conftest import require_reference as reference


def test_summaries_read_names_without_unpickling(tmp_path):
    s = summarize_file(reference("pigan", "generator.pth"))
    assert s.container == "torch-zip" and "generators.generators.ImplicitGenerator3d" in s.globals
    e = summarize_file(reference("eg3d", "network-snapshot.pkl"))
    assert e.container == "pickle" and "TriPlaneGenerator" in e.strings
    assert summarize_bytes(b"not a pickle at all").container == "unknown"
    # A pickle whose reduce would run code is only read, never executed.
    payload = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x04boom\x94\x85\x94R\x94."
    assert "os.system" in summarize_bytes(payload).globals


# pi-GAN's file fits CelebA and Cats: its fixture's README names CelebA. The EG3D and EpiGRAF pickles say which.
@pytest.mark.parametrize("fixture, renamed, family, preset", [
    (("pigan", "generator.pth"), "weights.bin", "pigan", ["--preset", "pigan-celeba"]),
    (("eg3d", "network-snapshot.pkl"), "eg3d-model.pth", "eg3d", []),
    (("epigraf", "network-snapshot.pkl"), "epigraf-model.bin", "epigraf", []),
])
def test_convert_and_load_identify_files_by_content_whatever_their_suffix(tmp_path, fixture, renamed, family, preset):
    source = tmp_path / renamed
    shutil.copy(reference(*fixture), source)
    assert find_importer(source)[0].name == family
    assert main(["convert", str(source), str(tmp_path / "ckpt"), "--no-ema", *preset]) == 0
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["family"] == family
    G = aware3d.load(source, ema=False, preset=preset[1] if preset else None)
    converted = aware3d.load(tmp_path / "ckpt")
    assert G.family == family
    a, b = G.state_dict(), converted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fixture", [("pigan", "ema.pth"), ("epigraf", "fixture.pt"),
                                     ("eg3d", "README.md")])
def test_files_no_family_reads_are_refused_with_what_was_found(tmp_path, fixture):
    path = reference(*fixture)
    with pytest.raises(NoImporterError) as err:
        aware3d.load(path)
    text = str(err.value)
    assert "no importer recognises" in text and "Tried" in text
    for name, family in registry.families().items():
        if family.importers:  # a family with no official files (CGOF) has nothing to try
            assert f"{name}:" in text  # every family that was tried is named


def test_two_matching_importers_is_an_error(monkeypatch):
    path = reference("pigan", "generator.pth")
    pigan = registry.get_family("pigan")
    greedy = FamilySpec("greedy", pigan.config_cls, pigan.generator_cls, {}, TinyPresets("pigan-tiny", "pigan-tiny"),
                        importers=(Importer("anything at all", lambda summary: True, pigan.importers[0].load),))
    monkeypatch.setitem(registry._FAMILIES, "greedy", greedy)
    with pytest.raises(NoImporterError, match="several importers.*pigan:.*greedy: anything at all"):
        find_importer(path)


def test_register_family_checks_the_spec(monkeypatch):
    pigan = registry.get_family("pigan")
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    with pytest.raises(ValueError, match="already registered"):
        registry.register_family(FamilySpec("pigan", pigan.config_cls, pigan.generator_cls, {},
                                            TinyPresets("pigan-tiny", "pigan-tiny")))
    with pytest.raises(ValueError, match="PiGANGenerator.family is 'pigan'"):
        registry.register_family(FamilySpec("other", pigan.config_cls, pigan.generator_cls, {},
                                            TinyPresets("x", "x")))
