"""Cameras and rays, shared by every family. See :mod:`.poses` for conventions (world +y up, OpenCV cameras)."""

from .paths import CAMERA_PATHS, CameraPath, get_camera_path
from .poses import (
    PoseDistribution,
    angles_from_cam2world,
    cam2world_from_angles,
    camera_origin_from_angles,
    epigraf_to_pigan,
    focal_to_fov,
    fov_to_focal,
    from_eg3d_label,
    intrinsics_from_fov,
    look_at,
    opengl_to_opencv,
    pigan_to_epigraf,
    sample_angles,
    to_eg3d_label,
)
from .rays import Cameras, PixelGrid, camera_directions, generate_rays, pixel_coordinates, rotate_to_world

__all__ = [
    "CAMERA_PATHS", "CameraPath", "Cameras", "camera_directions", "rotate_to_world", "PixelGrid", "PoseDistribution", "angles_from_cam2world",
    "cam2world_from_angles", "camera_origin_from_angles", "epigraf_to_pigan", "focal_to_fov", "fov_to_focal",
    "from_eg3d_label", "generate_rays", "get_camera_path", "intrinsics_from_fov", "look_at", "opengl_to_opencv",
    "pigan_to_epigraf", "pixel_coordinates", "sample_angles", "to_eg3d_label",
]
