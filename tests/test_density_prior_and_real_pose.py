"""The demo recipe's additions (issue 19): the density-prior schedule, D's pose term on real images, the silhouette
channel and the plain background."""

import math

import pytest
import torch

from aware3d.cameras import Cameras
from aware3d.cameras.poses import to_eg3d_label
from aware3d.errors import ConfigError
from aware3d.losses.base import Chunk
from aware3d.losses.pigan import PiGANLoss, PiGANLossConfig
from aware3d.rendering import RenderConfig
from aware3d.training.curriculum import Curriculum, Stage


def test_density_prior_fades_linearly_and_reaches_the_render_config():
    cur = Curriculum((Stage(0, 32, 8, 1, 12, 0),), density_prior=40.0, density_prior_steps=100,
                     density_prior_radius=0.07)
    base = RenderConfig()
    assert cur.render_config(base, 0).density_prior == pytest.approx(40.0)
    assert cur.render_config(base, 25).density_prior == pytest.approx(30.0)
    assert cur.render_config(base, 100).density_prior == 0.0
    assert cur.render_config(base, 10 ** 6).density_prior == 0.0
    assert cur.render_config(base, 0).density_prior_radius == 0.07
    assert "density_prior" in {s.name for s in cur.schedules()}
    assert Curriculum((Stage(0, 32, 8),)).prior_schedule().value_at(0) == 0.0  # off by default (the seeds)


class _PoseD(torch.nn.Module):
    """A discriminator whose pose head is a learnable constant: the real-pose term's gradient moves it to the
    real cameras' mean (pitch, yaw)."""

    def __init__(self):
        super().__init__()
        self.pose = torch.nn.Parameter(torch.zeros(2))

    def forward(self, images, alpha):
        from types import SimpleNamespace

        b = images.shape[0]
        return SimpleNamespace(logits=images.mean((1, 2, 3)).unsqueeze(-1), pose=self.pose.expand(b, 2),
                               latent=None)


class _FlatG(torch.nn.Module):
    def forward(self, z, cameras, **kw):
        from types import SimpleNamespace

        return SimpleNamespace(image=torch.zeros(z.shape[0], 3, 4, 4))


def _chunk(real_labels: torch.Tensor) -> Chunk:
    b = real_labels.shape[0]
    cams = Cameras.from_angles(torch.full((b,), math.pi / 2), torch.full((b,), math.pi / 2), 12.0)
    return Chunk(real_images=torch.zeros(b, 3, 4, 4), real_labels=real_labels, z=torch.zeros(b, 2), cameras=cams,
                 angles=torch.full((b, 2), math.pi / 2), generator=torch.Generator().manual_seed(0))


def _labels(yaw: float, pitch: float, b: int = 3) -> torch.Tensor:
    cams = Cameras.from_angles(torch.full((b,), yaw), torch.full((b,), pitch), 12.0)
    return to_eg3d_label(cams.cam2world, torch.eye(3).expand(b, 3, 3))


def test_real_pose_term_regresses_the_real_cameras():
    D = _PoseD()
    loss = PiGANLoss(_FlatG(), D, PiGANLossConfig(r1_gamma=0, pos_lambda=0, real_pos_lambda=1.0, identity_loss="mse"))
    chunk = _chunk(_labels(1.2, 1.4))
    pred = D(chunk.real_images, 1.0)
    term = loss._real_pose_term(pred, chunk)
    # D predicts (0, 0); the real cameras are (pitch 1.4, yaw 1.2): mse = (1.4^2 + 1.2^2) / 2.
    assert float(term.detach()) == pytest.approx((1.4 ** 2 + 1.2 ** 2) / 2, rel=1e-5)
    opt = torch.optim.SGD(D.parameters(), lr=0.4)
    for _ in range(60):
        opt.zero_grad()
        loss._real_pose_term(D(chunk.real_images, 1.0), chunk).backward()
        opt.step()
    assert torch.allclose(D.pose.detach(), torch.tensor([1.4, 1.2]), atol=1e-3)


def test_real_pose_term_without_dataset_cameras_is_a_config_error():
    loss = PiGANLoss(_FlatG(), _PoseD(), PiGANLossConfig(real_pos_lambda=1.0))
    chunk = _chunk(torch.zeros(3, 25))
    with pytest.raises(ConfigError, match="real_pos_lambda"):
        loss._real_pose_term(_PoseD()(chunk.real_images, 1.0), chunk)


class _SilhouetteG(torch.nn.Module):
    """Renders grey images whose opacity is 1 in the left half (at half the image size, as a family with
    super-resolution renders it)."""

    def forward(self, z, cameras, **kw):
        from types import SimpleNamespace

        b = z.shape[0]
        opacity = torch.zeros(b, 1, 2, 2)
        opacity[..., 0] = 1.0
        return SimpleNamespace(image=torch.full((b, 3, 4, 4), 0.25), opacity=opacity)


def test_silhouette_shows_d_the_real_mask_and_the_generated_opacity_as_a_fourth_channel():
    loss = PiGANLoss(_SilhouetteG(), _PoseD(), PiGANLossConfig(silhouette=True))
    chunk = _chunk(_labels(1.2, 1.4))
    mask = torch.zeros(3, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1.0
    chunk.real_extras["mask"] = mask
    real = loss._real_inputs(chunk)
    assert real.shape == (3, 4, 4, 4)
    assert torch.equal(real[:, :3], chunk.real_images) and torch.equal(real[:, 3:], mask * 2 - 1)
    stage = type("S", (), {"resolution": 4, "render": None})()
    fake = loss._generate(chunk, stage)
    assert fake.shape == (3, 4, 4, 4) and torch.equal(fake[:, :3], torch.full((3, 3, 4, 4), 0.25))
    # The half-size opacity is resized to the image: +1 on the left columns, -1 on the right.
    assert float(fake[:, 3, :, 0].min()) == 1.0 and float(fake[:, 3, :, -1].max()) == -1.0
    # Off (the seeds): D sees the colour alone.
    plain = PiGANLoss(_SilhouetteG(), _PoseD(), PiGANLossConfig())
    assert plain._real_inputs(chunk).shape[1] == 3 and plain._generate(chunk, stage).shape[1] == 3


def test_silhouette_without_masks_is_a_config_error():
    loss = PiGANLoss(_SilhouetteG(), _PoseD(), PiGANLossConfig(silhouette=True))
    with pytest.raises(ConfigError, match="silhouette"):
        loss._real_inputs(_chunk(_labels(1.2, 1.4)))


def test_discriminator_with_a_silhouette_channel():
    from aware3d.nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

    torch.manual_seed(0)
    D = ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=16, channel_base=64, channel_max=16,
                                                                in_channels=4))
    x = torch.randn(2, 4, 16, 16)
    out = D(x, 1.0)
    assert out.logits.shape == (2, 1)
    # The silhouette channel matters: flipping it changes the logits.
    flipped = x.clone()
    flipped[:, 3] = -flipped[:, 3]
    assert not torch.allclose(D(flipped, 1.0).logits, out.logits)
    # Colour-only images (the inversion's feature loss) get the channel as +1 (all foreground).
    feats = D.feature_maps(x[:, :3])
    full = D.feature_maps(torch.cat([x[:, :3], torch.ones(2, 1, 16, 16)], 1))
    assert all(torch.equal(a, b) for a, b in zip(feats, full))
    with pytest.raises(ValueError, match="in_channels"):
        ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(in_channels=0))


def test_background_point_puts_every_latent_on_one_plain_field_colour():
    """model.background_point: empty rays show the field's colour at that world point, the same from every camera."""
    from dataclasses import replace

    from aware3d.models.pigan import PIGAN_PRESETS, PiGANGenerator

    torch.manual_seed(0)
    point = (0.0, 0.0, -0.15)
    G = PiGANGenerator(replace(PIGAN_PRESETS["pigan-tiny"], background_point=point)).eval()
    w = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    cams = G.cameras([math.pi / 2 - 0.4, math.pi / 2 + 0.4], [math.pi / 2, math.pi / 2])
    # A vanishing density scale (and a short last interval) empties every ray: the image is the background alone.
    empty = replace(G.config.eval_render, density_scale=1e-9, last_delta=1e-3)
    with torch.no_grad():
        out = G.synthesis(w, cams, resolution=8, render=empty)
        colour = G.color(w)(torch.tensor([[point]]).expand(2, 1, 3))  # (2, 1, 3) in [0, 1]
    assert float(out.opacity.max()) < 1e-6
    expected = (colour * 2 - 1)[:, 0, :, None, None].expand(2, 3, 8, 8)
    assert torch.allclose(out.image, expected, atol=1e-5)
    assert not torch.allclose(expected[0], expected[1])  # one colour per latent
    # Without the point, the same empty rays show pi-GAN's last-sample fill: a texture, not one colour.
    with torch.no_grad():
        plain = PiGANGenerator(PIGAN_PRESETS["pigan-tiny"]).eval()
        plain.load_state_dict(G.state_dict())
        textured = plain.synthesis(w, cams, resolution=8, render=replace(empty, background="last_sample")).image
    assert float(textured.flatten(2).std(-1).mean()) > 1e-3


def test_a_discriminator_without_the_silhouette_channel_is_a_config_error():
    from aware3d.nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

    D3 = ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=16, channel_base=64, channel_max=16))
    with pytest.raises(ConfigError, match="discriminator.in_channels=4"):
        PiGANLoss(_SilhouetteG(), D3, PiGANLossConfig(silhouette=True))
    PiGANLoss(_SilhouetteG(), D3, PiGANLossConfig())  # colour only: fine
