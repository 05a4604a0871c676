"""Cameras: look-at, the three angle conventions, intrinsics and rays, against hand-computed values."""

import math

import pytest
import torch

from aware3d.cameras import (
    Cameras, PoseDistribution, angles_from_cam2world, cam2world_from_angles, camera_directions,
    epigraf_to_pigan, focal_to_fov, fov_to_focal, from_eg3d_label, generate_rays, get_camera_path,
    intrinsics_from_fov, opengl_to_opencv, pigan_to_epigraf, to_eg3d_label,
)


def test_frontal_camera_matches_hand_values():
    c2w = cam2world_from_angles(torch.tensor([math.pi / 2]), torch.tensor([math.pi / 2]))
    # Camera on +z looking at the origin: x right = +x, y down = -y, z forward = -z.
    expected = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 1], [0, 0, -1, 1], [0, 0, 0, 1]])
    expected[:3, 3] = torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(c2w[0], expected, atol=1e-6)


def test_view_a_origin_from_reference_readme():
    c = Cameras.from_angles(math.pi / 2 + 0.3, math.pi / 2 - 0.1, 12.0)
    assert torch.allclose(c.origins[0], torch.tensor([-0.2940, 0.0998, 0.9506]), atol=1e-4)


def test_rotation_is_orthonormal_and_looks_at_target():
    yaw, pitch = torch.rand(16) * 6, torch.rand(16) * 3 + 0.05
    c2w = cam2world_from_angles(yaw, pitch, radius=2.7)
    R = c2w[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(R), torch.ones(16), atol=1e-5)
    forward = R[:, :, 2]
    assert torch.allclose(forward, -c2w[:, :3, 3] / 2.7, atol=1e-5)
    # Upright: image "down" has a negative world-y component.
    assert (R[:, 1, 1] < 0).all()


def test_conventions_round_trip():
    yaw = torch.tensor([1.2, 1.5708, 2.3, -0.4])
    pitch = torch.tensor([1.0, 1.5708, 2.0, 1.3])
    ang = pigan_to_epigraf(yaw, pitch)
    assert torch.allclose(ang[1], torch.tensor([0.0, 1.5708, 0.0]), atol=1e-4)  # EpiGRAF frontal: [0, pi/2, 0]
    y2, p2 = epigraf_to_pigan(ang)
    assert torch.allclose(y2, yaw) and torch.allclose(p2, pitch)
    c2w = cam2world_from_angles(yaw, pitch, radius=1.5)
    K = intrinsics_from_fov(18.837, batch=4)
    label = to_eg3d_label(c2w, K)
    assert label.shape == (4, 25)
    c2, K2 = from_eg3d_label(label)
    assert torch.equal(c2, c2w) and torch.equal(K2, K)
    y3, p3, r3 = angles_from_cam2world(c2)
    assert torch.allclose(torch.remainder(y3 - yaw + math.pi, 2 * math.pi) - math.pi, torch.zeros(4), atol=1e-5)
    assert torch.allclose(p3, pitch, atol=1e-5) and torch.allclose(r3, torch.full((4,), 1.5), atol=1e-5)
    with pytest.raises(ValueError, match="25"):
        from_eg3d_label(torch.zeros(2, 24))


def test_opengl_opencv_flip_is_self_inverse():
    c2w = cam2world_from_angles(torch.tensor([0.7]), torch.tensor([1.1]))
    assert torch.equal(opengl_to_opencv(opengl_to_opencv(c2w)), c2w)
    gl = opengl_to_opencv(c2w)
    # OpenGL cameras look down -z.
    assert torch.allclose(-gl[0, :3, 2], c2w[0, :3, 2])


def test_fov_focal():
    # EG3D FFHQ: focal 4.2647 <-> fov 18.837 deg (EG3D's own helper rounds pi and sqrt 2).
    assert fov_to_focal(18.837) == pytest.approx(1 / (2 * math.tan(math.radians(18.837) / 2)))
    assert focal_to_fov(fov_to_focal(12.0)) == pytest.approx(12.0)
    assert focal_to_fov(4.2647) == pytest.approx(13.37, abs=0.01)


def test_rays_pixel_centers_hand_values():
    cam = Cameras(cam2world_from_angles(torch.tensor([math.pi / 2]), torch.tensor([math.pi / 2])),
                  intrinsics_from_fov(90.0))
    o, d = generate_rays(cam, 2, 2, grid="pixel_centers")
    assert o.shape == d.shape == (1, 4, 3)
    # fov 90: f = 0.5; pixel (0,0) at u=v=0.25 -> camera (-0.5, -0.5, 1) = up-left; world (-0.5, +0.5, -1).
    expected = torch.tensor([-0.5, 0.5, -1.0]) / math.sqrt(1.5)
    assert torch.allclose(d[0, 0], expected, atol=1e-6)
    assert torch.allclose(o[0, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_edge_aligned_grid_puts_corner_pixels_on_the_fov():
    cam = Cameras.from_angles(math.pi / 2, math.pi / 2, 12.0)
    d = camera_directions(cam.intrinsics, 64, 64, "edge_aligned")
    # pi-GAN's pixel 0: camera-frame (GL) direction (-0.1040, 0.1040, -0.9891); OpenCV flips y and z.
    assert torch.allclose(d[0, 0], torch.tensor([-0.1040, -0.1040, 0.9891]), atol=1e-4)
    angle = torch.rad2deg(torch.acos((d[0, 0, [0, 2]] / d[0, 0, [0, 2]].norm()) @ torch.tensor([0.0, 1.0])))
    assert float(angle) == pytest.approx(6.0, abs=1e-4)


def test_pixel_subset_rays_match_full_image():
    cam = Cameras.from_angles([1.3, 1.9], [1.4, 1.6], 20.0)
    o, d = generate_rays(cam, 8, 8)
    from aware3d.cameras import pixel_coordinates
    px = pixel_coordinates(8, 8)[[0, 9, 63]]
    _, d_sub = generate_rays(cam, 8, 8, pixels=px)
    assert torch.allclose(d_sub, d[:, [0, 9, 63]], atol=1e-6)


@pytest.mark.parametrize("dist", ["gaussian", "uniform", "truncated_gaussian", "spherical_uniform", "fixed"])
def test_pose_distributions(dist):
    d = PoseDistribution(dist, math.pi / 2, math.pi / 2, 0.3, 0.15)
    g = torch.Generator().manual_seed(0)
    yaw, pitch = d.sample(4000, generator=g)
    yaw2, _ = d.sample(4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(yaw, yaw2)
    assert (pitch > 0).all() and (pitch < math.pi).all()
    assert float(yaw.mean()) == pytest.approx(math.pi / 2, abs=0.02)
    if dist == "uniform":
        assert float((yaw - math.pi / 2).abs().max()) <= 0.3
    if dist == "truncated_gaussian":
        assert float((yaw - math.pi / 2).abs().max()) < 0.6
    if dist == "fixed":
        assert float(yaw.std()) == 0


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="gaussian"):
        PoseDistribution("nope").sample(2)
    with pytest.raises(ValueError, match="orbit"):
        get_camera_path("nope", PoseDistribution(), 4)


def test_camera_paths_shapes():
    for name in ["yaw_sweep", "orbit", "front_circle", "zoom"]:
        p = get_camera_path(name, PoseDistribution(), 12)
        assert len(p) == 12 and p.pitch.shape == (12,) and p.fov_scale.shape == (12,)
    orbit = get_camera_path("orbit", PoseDistribution(), 8)
    assert float(orbit.yaw[-1] - orbit.yaw[0]) == pytest.approx(2 * math.pi * 7 / 8)


# ----------------------------------------------------------------- EpiGRAF camera_angles (official convention)

def test_epigraf_converters_round_trip_and_match_the_family():
    from aware3d.models.epigraf.cameras import epigraf_angles_from_pigan

    yaw = torch.tensor([1.2, math.pi / 2, 2.3, -0.4, 4.0])
    pitch = torch.tensor([1.0, math.pi / 2, 2.0, 1.3, 0.2])
    ang = pigan_to_epigraf(yaw, pitch)
    assert torch.equal(ang, epigraf_angles_from_pigan(yaw, pitch))
    assert torch.allclose(ang[1], torch.tensor([0.0, math.pi / 2, 0.0]))  # frontal: yaw 0 on the horizon
    y2, p2 = epigraf_to_pigan(ang)
    assert torch.allclose(y2, yaw) and torch.equal(p2, pitch)
    assert torch.allclose(pigan_to_epigraf(*epigraf_to_pigan(torch.tensor([[0.3, 1.2, 0.0]]))),
                          torch.tensor([[0.3, 1.2, 0.0]]))


def test_epigraf_converters_give_the_official_cameras():
    """The fixture's compute_cam2world_matrix cases, moved to our world (exact), equal our look-at of the converted
    angles (roll is ignored officially, and here)."""
    from aware3d.models.epigraf.cameras import epigraf_c2w_to_ours
    from tests.conftest import require_reference

    fx = torch.load(require_reference("epigraf", "fixture.pt"), weights_only=True)
    angles = fx["cam_angles"]
    ok = angles[:, 1] > 1e-3  # the pitch-1e-5 case is a degenerate look-at (camera on the up axis)
    yaw, pitch = epigraf_to_pigan(angles)
    ours = cam2world_from_angles(yaw, pitch, radius=1.0)
    official = epigraf_c2w_to_ours(fx["cam2world"])
    assert torch.allclose(ours[ok], official[ok], atol=1e-6)
    assert torch.allclose(ours[:, :3, 3], official[:, :3, 3], atol=1e-6)  # positions agree for all eight
    ours27 = cam2world_from_angles(yaw[:3], pitch[:3], radius=2.7)
    assert torch.allclose(ours27, epigraf_c2w_to_ours(fx["cam2world_radius2p7"]), atol=1e-6)
