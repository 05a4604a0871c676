"""EpiGRAF properties that need no official output: conventions, patches, backgrounds, conditioning, config checks
and the importer's refusals (tiny models; the reference files only where the importer reads them)."""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import shutil
import sys
import time
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from aware3d.cameras import Cameras, generate_rays
from aware3d.io.keymap import CheckpointMismatchError
from aware3d.io.safe_unpickle import load_pickle_file
from aware3d.io.sniff import summarize_file
from aware3d.models.base import Condition
from aware3d.models.epigraf import EPIGRAF_PRESETS, EpiGRAFConfig, EpiGRAFGenerator, PatchParams, epigraf_render
from aware3d.models.epigraf.cameras import (
    camera_directions,
    cameras_from_epigraf_angles,
    epigraf_angles_from_cameras,
    epigraf_angles_from_pigan,
    epigraf_c2w_to_ours,
    epigraf_cam2world,
    epigraf_points_to_ours,
    our_c2w_to_epigraf,
    our_points_to_epigraf,
)
from aware3d.models.epigraf.convert import (
    STAND_INS,
    EpiGRAFImportError,
    build_generator,
    config_from_official,
    generator_config_tree,
    generator_from_tensors,
    import_generator_state_dict,
    is_generator_state_dict,
    is_official_snapshot,
    load_snapshot_networks,
    resolve_interpolations,
)
from aware3d.models.epigraf.generator import wrapped_camera_label
from aware3d.models.registry import build_generator as build_preset
from aware3d.rendering import RandomDraws

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**changes) -> EpiGRAFGenerator:
    torch.manual_seed(5)
    G = EpiGRAFGenerator(replace(EPIGRAF_PRESETS["epigraf-tiny"], **changes)).eval()
    G.update_w_avg(200)
    return G


def angles(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ------------------------------------------------------------------------------------------ conventions
def test_camera_frames_convert_exactly_and_frontal_is_frontal():
    a = angles([0.0, math.pi / 2, 0.0], [0.7, 1.1, 0.0], [-2.5, 2.9, 0.0])
    cams = cameras_from_epigraf_angles(a, 1.3, 12.0)
    official = epigraf_cam2world(a, 1.3)
    assert torch.equal(our_c2w_to_epigraf(cams.cam2world), official)
    assert torch.equal(epigraf_c2w_to_ours(official), cams.cam2world)
    p = torch.randn(5, 3)
    assert torch.equal(our_points_to_epigraf(epigraf_points_to_ours(p)), p)
    # EpiGRAF's frontal camera (yaw 0, pitch pi/2, on its +x axis) is our frontal camera (on +z), looking at the origin.
    front = cams[0]
    assert torch.allclose(front.origins, torch.tensor([[0.0, 0.0, 1.3]]), atol=1e-6)
    ours = Cameras.from_angles(math.pi / 2, math.pi / 2, 12.0, radius=1.3)
    assert torch.allclose(front.cam2world, ours.cam2world, atol=1e-6)
    # pi-GAN angles (our world) <-> EpiGRAF angles: yaw shifted by pi/2, pitch shared.
    pig = Cameras.from_angles([1.2, 2.0], [1.4, 1.9], 12.0)
    conv = epigraf_angles_from_pigan(torch.tensor([1.2, 2.0]), torch.tensor([1.4, 1.9]))
    assert torch.allclose(epigraf_angles_from_cameras(pig), conv, atol=1e-5)
    assert torch.allclose(epigraf_angles_from_cameras(cams), a, atol=1e-5)


def test_rays_in_both_frames_are_the_same_rays():
    """EpiGRAF's NDC rays (edge pixel centres on the fov border) are our edge_aligned grid of the same camera."""
    cams = cameras_from_epigraf_angles(angles([0.3, 1.3, 0.0]), 1.0, 12.0)
    o, d = generate_rays(cams, 6, 6, grid="edge_aligned")
    c2w = our_c2w_to_epigraf(cams.cam2world)
    d_epi = torch.bmm(c2w[:, :3, :3], camera_directions(1, 6, 12.0).permute(0, 2, 1)).permute(0, 2, 1)
    assert torch.allclose(epigraf_points_to_ours(d_epi), d, atol=1e-6)
    assert torch.allclose(epigraf_points_to_ours(c2w[:, None, :3, 3]).expand_as(o), o, atol=0)


def test_gpc_label_and_mean_pose_fallback():
    a = angles([2 * math.pi + 0.5, -0.25, 0.0], [-7.0, math.pi / 2, 0.0])
    label = wrapped_camera_label(a)
    assert torch.allclose(label, torch.tensor([[0.5 / (2 * math.pi), -0.25 / (2 * math.pi)],
                                               [-(7.0 - 2 * math.pi) / (2 * math.pi), 0.25]]), atol=1e-6)
    G = tiny()
    z = G.z_from_seeds([0, 1])
    with torch.no_grad():
        fallback = G.mapping(z, 0.8)
        explicit = G.mapping(z, 0.8, cameras=G.mean_camera_pose[None])
        other = G.mapping(z, 0.8, cameras=angles([0.4, 1.2, 0.0]))
    assert torch.equal(fallback, explicit) and not torch.allclose(fallback, other)
    with pytest.raises(ValueError, match="training mode needs the conditioning"):
        G.train().mapping(z)


def test_class_conditioning():
    G = tiny(c_dim=3)
    z = G.z_from_seeds([0, 1])
    with torch.no_grad():
        w0 = G.mapping(z, condition=Condition(class_label=torch.tensor([0, 0])))
        w2 = G.mapping(z, condition=Condition(class_label=torch.tensor([2])))
    assert w0.shape == (2, G.num_ws, 32) and not torch.allclose(w0, w2)
    with pytest.raises(ValueError, match="class-conditional"):
        G.mapping(z)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        G.mapping(z, condition=Condition(class_label=torch.tensor([3, 0])))
    with pytest.raises(ValueError, match="not class-conditional"):
        tiny().mapping(z, condition=Condition(class_label=torch.tensor([0])))


# ------------------------------------------------------------------------------------------ rendering
def test_tiny_preset_renders_32px_well_under_a_second():
    G = build_preset("epigraf-tiny").eval()
    w = G.mapping(G.z_from_seeds([0]), 0.7)
    cams = G.cameras([math.pi / 2], [math.pi / 2])
    with torch.no_grad():
        G.synthesis(w, cams, resolution=32)
        start = time.perf_counter()
        out = G.synthesis(w, cams, resolution=32, render=G.eval_render_config())
        elapsed = time.perf_counter() - start
    assert out.image.shape == (1, 3, 32, 32) and torch.isfinite(out.image).all()
    assert elapsed < 0.5, f"tiny 32 px render took {elapsed:.2f} s"


@pytest.mark.parametrize("offset, row, col", [((0.0, 0.0), 8, 0), ((0.5, 0.5), 0, 8), ((0.25, 0.5), 0, 4)])
def test_patch_render_equals_the_crop_of_a_full_render(offset, row, col):
    """A scale-0.5 patch at 9 x 9 rays lies on the grid of a 17 x 17 render when its offsets are multiples of 1/16:
    with the crop's draws it is that crop (rays equal up to the rounding of the patch formula)."""
    G = tiny()
    ws = G.mapping(G.z_from_seeds([3]), 0.7)
    cams = angles([0.2, 1.4, 0.0])
    g = torch.Generator().manual_seed(0)
    S = G.config.render.num_samples
    draws = RandomDraws(torch.rand(1, 17 * 17, S, generator=g), torch.rand(1, 17 * 17, S, generator=g))

    def crop(x):
        return x.reshape(1, 17, 17, -1)[:, row:row + 9, col:col + 9].reshape(1, 81, -1)

    patch = PatchParams(torch.tensor([[0.5, 0.5]]), torch.tensor([offset]))
    with torch.no_grad():
        full = G.synthesis(ws, cams, resolution=17, draws=draws)
        part = G.synthesis(ws, cams, resolution=9, patch=patch, draws=RandomDraws(*(crop(u) for u in
                                                                                   (draws.stratified, draws.importance))))
    dirs = camera_directions(1, 17, 12.0).reshape(1, 17, 17, 3)[:, row:row + 9, col:col + 9].reshape(1, 81, 3)
    assert (camera_directions(1, 9, 12.0, patch) - dirs).abs().max() <= 2e-7
    for name in ("image", "depth", "opacity"):
        whole = getattr(full, name)[:, :, row:row + 9, col:col + 9]
        assert torch.allclose(getattr(part, name), whole, atol=1e-4), name


def test_density_color_and_normals_live_in_our_world():
    G = tiny()
    w = G.mapping(G.z_from_seeds([1]), 0.7)
    p = (torch.rand(1, 50, 3) - 0.5) * 0.3
    planes = G.planes(w)
    with torch.no_grad():
        assert torch.equal(G.density(w)(p), G.sample_planes(planes, our_points_to_epigraf(p))[..., -1])
        rgb = G.color(w)(p)
    assert rgb.shape == (1, 50, 3) and bool(((rgb >= 0) & (rgb <= 1)).all())
    cams = G.cameras([1.9], [1.3])
    out = G.synthesis(w, cams, resolution=6, render=G.eval_render_config(), normals=True)
    o, d = generate_rays(cams, 6, 6, grid="edge_aligned")
    points = (o + d * out.surface_depth.reshape(1, -1, 1)).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(G.density(w)(points).sum(), points)
    expected = -F.normalize(grad, dim=-1).reshape(1, 6, 6, 3).permute(0, 3, 1, 2)
    mask = out.opacity > 1e-3
    assert torch.allclose(out.normals * mask, expected * mask, atol=1e-3)


def test_sphere_background_composites_with_the_final_transmittance():
    G = tiny(background="sphere", render=epigraf_render(samples=8, importance=8, background_model="sphere"),
             eval_render=epigraf_render(samples=8, importance=8, background_model="sphere", max_points=1 << 16))
    assert G.num_ws == G.backbone.num_ws + 4
    w = G.mapping(G.z_from_seeds([2]), 0.7)
    cams = angles([0.1, 1.5, 0.0])
    g = torch.Generator().manual_seed(1)
    draws = RandomDraws(torch.rand(1, 64, 8, generator=g), torch.rand(1, 64, 8, generator=g))
    with torch.no_grad():
        both = G.synthesis(w, cams, resolution=8, draws=draws)
        fg = G.synthesis(w, cams, resolution=8, draws=draws, ignore_bg=True)
        bg = G.synthesis(w, cams, resolution=8, draws=draws, bg_only=True)
        short = G.synthesis(w, cams, resolution=8, draws=draws, bg_num_steps=8)
    assert torch.equal(both.image, fg.image + both.background * both.final_transmittance)
    assert torch.equal(bg.image, both.background) and fg.background is None
    assert not torch.allclose(short.background, both.background)  # eval default: 8 x eval_ray_step_multiplier steps
    with pytest.raises(ValueError, match="bg_only needs a background model"):
        tiny().synthesis(w[:, :tiny().num_ws], cams, resolution=4, bg_only=True)


def test_plane_background_reads_the_resized_image_where_the_rays_cross_it():
    G = tiny(background="plane", img_resolution=8,
             render=epigraf_render(samples=8, importance=8, background_model="plane"),
             eval_render=epigraf_render(samples=8, importance=8, background_model="plane", max_points=1 << 16))
    w = G.mapping(G.z_from_seeds([4]), 0.7)
    cams = angles([0.0, math.pi / 2, 0.0])
    with torch.no_grad():
        planes = G.planes(w)
        image = F.interpolate(planes[:, -3:], size=(8, 8), mode="bilinear", align_corners=True)
        full = G.render_planes(planes, w, cams, resolution=8)
        s, o = 0.5, (0.25, 0.5)
        patch = G.render_planes(planes, w, cams, resolution=8, patch=PatchParams(torch.tensor([[s, s]]),
                                                                                 torch.tensor([o])))
    assert torch.allclose(full.background, image, atol=1e-6)
    # EpiGRAF's extract_patches grid for the same window (offset y from the bottom, image rows from the top).
    u = torch.linspace(-1, 1, 8)
    gx = (u + 1) * s - 1 + 2 * o[0]
    gy = -((torch.linspace(1, -1, 8) + 1) * s - 1 + 2 * o[1])
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]
    expected = F.grid_sample(image, grid, mode="bilinear", align_corners=True)
    assert torch.allclose(patch.background, expected, atol=1e-6)


def test_config_checks():
    with pytest.raises(ValueError, match="last delta 0.001"):
        EpiGRAFConfig(background="sphere")
    with pytest.raises(ValueError, match="last delta 1e"):
        EpiGRAFConfig(render=epigraf_render(background_model="sphere"))
    with pytest.raises(ValueError, match="power of two"):
        EpiGRAFConfig(plane_resolution=48)
    with pytest.raises(ValueError, match="cameras must be Cameras or EpiGRAF camera_angles"):
        tiny().synthesis(torch.zeros(1, 8, 32), torch.zeros(1, 2), resolution=4)
    assert all(cfg.render.jitter == "bins" and cfg.render.num_samples + cfg.render.num_importance in (96, 16)
               for cfg in EPIGRAF_PRESETS.values())


# ------------------------------------------------------------------------------------------ importers
@pytest.fixture(scope="module")
def snapshot():
    path = require_reference("epigraf", "network-snapshot.pkl")
    networks, _ = load_snapshot_networks(path)
    return path, networks


def test_sniffers_tell_the_files_apart():
    root = require_reference("epigraf")
    snap, sd, fixture = (summarize_file(root / f) for f in ("network-snapshot.pkl", "sphere_G_ema.pt", "fixture.pt"))
    assert is_official_snapshot(snap) and not is_generator_state_dict(snap)
    assert is_generator_state_dict(sd) and not is_official_snapshot(sd)
    assert not is_official_snapshot(fixture) and not is_generator_state_dict(fixture)
    eg3d = require_reference("eg3d", "network-snapshot.pkl")
    assert not is_official_snapshot(summarize_file(eg3d))


def test_import_runs_nothing_from_the_pickle(snapshot):
    _, networks = snapshot
    assert not any(m == "src" or m.startswith("src.") or m.startswith("omegaconf") for m in sys.modules)
    assert "class TriPlaneMLP" in networks["G_ema"].children()["synthesis"].extra["module_src"]


def test_config_interpolations(snapshot):
    root = {"a": {"b": 3, "c": "${a.b}", "s": "x_${a.b}_${d}"}, "d": None, "n": {"m": "${a}"}}
    assert resolve_interpolations(root["n"], root) == {"m": {"b": 3, "c": 3, "s": "x_3_None"}}
    with pytest.raises(EpiGRAFImportError, match="not plain absolute"):
        resolve_interpolations("${oc.env:HOME}", root)
    with pytest.raises(EpiGRAFImportError, match="names no value"):
        resolve_interpolations("${a.zz}", root)
    loop = {"x": "${y}", "y": "${x}"}
    with pytest.raises(EpiGRAFImportError, match="too deep"):
        resolve_interpolations("${x}", loop)
    _, networks = snapshot
    cfg = generator_config_tree(networks["G_ema"].get("cfg"), "cfg")
    assert cfg["dataset"]["camera"]["fov"] == 12.0 and cfg["patch"]["mbstd_group_size"] == 4
    assert cfg["dataset"]["path"] == "data/ffhq_512_posed.zip"


def test_unsupported_classes_options_and_keys_are_refused(snapshot):
    path, networks = snapshot
    root = networks["G_ema"]
    kw = root.get("_init_kwargs")
    cfg = generator_config_tree(root.get("cfg"), "cfg")
    for key, value, message in [(("tri_plane", "has_view_cond"), True, "has_view_cond"),
                                (("backbone",), "stylegan3-r", "backbone"),
                                (("bg_model", "type"), "cube", "bg_model.type"),
                                (("clamp_mode",), "relu", "clamp_mode")]:
        changed = json.loads(json.dumps(cfg))
        node = changed
        for k in key[:-1]:
            node = node[k]
        node[key[-1]] = value
        with pytest.raises(EpiGRAFImportError, match=message):
            config_from_official(kw, changed, {}, "test")
    config, _ = config_from_official(kw, cfg, {}, "test")
    tensors = root.named_tensors()
    broken = dict(tensors)
    broken.pop("synthesis.tri_plane_mlp.model.1.bias")
    broken["synthesis.extra.weight"] = torch.zeros(1)
    broken["mapping.fc0.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointMismatchError) as err:
        generator_from_tensors(config, broken, "test")
    assert all(s in str(err.value) for s in ("tri_plane_mlp.model.1.bias", "synthesis.extra.weight", "shape mismatch"))
    renamed = load_snapshot_networks(path)[0]["G_ema"]
    renamed.children()["synthesis"].children()["tri_plane_mlp"].qualname = "FancyMLP"
    with pytest.raises(EpiGRAFImportError, match="FancyMLP at G_ema.synthesis.tri_plane_mlp"):
        build_generator(renamed, str(path))


def test_state_dict_needs_its_kwargs_json(tmp_path):
    pt = require_reference("epigraf", "sphere_G_ema.pt")
    shutil.copy(pt, tmp_path / "weights.pt")
    with pytest.raises(FileNotFoundError, match="weights.json"):
        import_generator_state_dict(tmp_path / "weights.pt")


def test_cuda_storage_locations_load_on_the_cpu():
    """Snapshots of GPU runs say 'cuda:0' in every storage record; the importer's unpickler maps them to the CPU."""
    buf = io.BytesIO()
    with warnings.catch_warnings():  # TypedStorage is deprecated, but it is what the official pickles hold
        warnings.simplefilter("ignore")
        torch.save(torch.arange(4.0).storage(), buf, _use_new_zipfile_serialization=False)  # a FloatStorage record
    blob = buf.getvalue()
    assert blob.count(b"\x58\x03\x00\x00\x00cpu") + blob.count(b"\x8c\x03cpu") == 1
    blob = blob.replace(b"\x58\x03\x00\x00\x00cpu", b"\x58\x06\x00\x00\x00cuda:0").replace(b"\x8c\x03cpu",
                                                                                           b"\x8c\x06cuda:0")

    class Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (blob,)

    class Tensor4:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (4,), (1,), False, collections.OrderedDict())

    data = load_pickle_file(io.BytesIO(pickle.dumps({"t": Tensor4()}, protocol=4)), stand_ins=STAND_INS)
    assert data["t"].device.type == "cpu" and data["t"].dtype == torch.float32
    assert torch.equal(data["t"], torch.arange(4.0))


def test_config_interpolations_are_memoised_and_bounded():
    """A hostile omegaconf tree of ``${b}${b}`` chains: shared references resolve once (no exponential time) and
    text longer than the bound is refused, naming the node."""
    from aware3d.models.epigraf.convert import EpiGRAFImportError, resolve_interpolations

    levels = 30
    root = {f"n{i}": f"${{n{i + 1}}}${{n{i + 1}}}" for i in range(levels)}
    root[f"n{levels}"] = "x"
    root["short"] = "${n20}"  # 2**10 characters: fine
    start = time.perf_counter()
    assert resolve_interpolations(root["short"], root) == "x" * 2 ** 10
    with pytest.raises(EpiGRAFImportError, match="expand to over"):
        resolve_interpolations({"a": "${n0}"}, root)
    assert time.perf_counter() - start < 2.0
    assert resolve_interpolations({"a": "${n29}", "b": 3}, root) == {"a": "xx", "b": 3}
