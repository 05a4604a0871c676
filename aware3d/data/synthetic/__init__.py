"""Synthetic 3D datasets with exact ground truth, generated on the fly and deterministically.

No real dataset can be downloaded here, so aware3d renders its own: every item is a small analytic scene
(a union of convex solids) ray cast exactly, so image, depth, normals and mask agree to float precision
and the scene parameters double as a morphable model (CGOF-style conditioning) and as ground truth.

Three kinds exist (:data:`SYNTHETIC_DATASETS`):

* ``synthetic-heads``: face-like heads facing **+z** (the frontal camera at ``(0, 0, r)`` sees the face):
  an egg-shaped cranium (two half-ellipsoids joined smoothly), neck, nose, ears, eyes (white sclera,
  coloured iris, black pupil) under upper eyelids, eyebrows, lips with a painted mouth opening whose height
  is the ``mouth_open`` expression, and an optional hair cap. Cameras follow pi-GAN's CelebA curriculum
  (gaussian yaw/pitch around frontal, std 0.3 / 0.155 rad, fov 12 deg, radius 1, so the frame spans about
  +-0.105 at the origin); the head lies inside about ``[-0.075, 0.075] x [-0.095, 0.105] x [-0.1, 0.09]``
  and the neck continues below the frame. The background is **one uniform colour per sample** (a random
  grey with a small random tint, stored in ``SyntheticSample.background``) so a generator must model it,
  as CelebA backgrounds vary.
* ``synthetic-faces`` (:mod:`.faces`): the morphable face model (the built-in synthetic one, or a Basel Face
  Model file from ``$AWARE3D_FACE_MODEL``) under random coefficients, rasterised from the same cameras as the
  heads, with Deep3DFaceRecon's 257 coefficients and 68 landmarks as ground truth (a
  :class:`SyntheticFaceSample`).
* ``synthetic-objects``: toy cars (rounded-box body and cabin, four cylindrical wheels with hubcaps,
  painted windows and lights) with their front toward **+x**, roof toward +y, inside ``[-0.3, 0.3]^3``,
  on a **white** background (pi-GAN CARLA's ``white_back``). Cameras: yaw uniform over 360 deg, pitch
  ``spherical_uniform`` over the upper hemisphere (pi-GAN CARLA: mean = spread = pi/4 * 85/90), fov 30,
  radius 1.

Modules, in dataflow order (everything is re-exported here, so ``from aware3d.data.synthetic import X``
works for every public name):

* :mod:`.raycast`: :class:`Primitives`, :class:`Scene` (a union of convex solids) and its exact
  :meth:`Scene.intersect` into :class:`Hits`, with conservative tile culling.
* :mod:`.render`: :func:`render_scene` (pinhole rays, Lambertian shading, edge antialiasing) into a
  :class:`RenderResult`.
* :mod:`.scenes`: the scene builders :func:`head_scene` / :func:`object_scene`, their parameter layouts
  and random draws (:func:`sample_head_params`, :func:`sample_object_params`, :func:`sample_light`,
  :func:`sample_background`), :func:`render_head` / :func:`render_object`.
* :mod:`.dataset`: :class:`SyntheticConfig`, the presets :data:`SYNTHETIC_DATASETS`,
  :class:`SyntheticDataset` and its :class:`SyntheticSample`.

Conventions of a :class:`SyntheticSample`:

* ``image`` (3, H, W) in [-1, 1]; ``mask`` (1, H, W) in {0, 1}, 1 where the pixel-centre ray hits.
* ``depth`` (1, H, W): **distance along the unit ray** from the camera centre to the surface (world units),
  **0 on background** (finite, so losses never meet inf; use ``mask``).
* ``normals`` (3, H, W): world-space unit outward normals, 0 on background.
* Depth, normals and mask come from the pixel-centre ray of the ``grid`` (default ``"pixel_centers"``);
  with ``antialias`` the *image* alone additionally averages 4 rotated-grid sub-samples (plus the centre)
  in pixels where the material changes, so silhouettes are smooth and the geometry stays exact.
* Cameras: ``cam2world`` (4, 4) OpenCV, ``intrinsics`` (3, 3) normalised, ``angles`` (2,) pi-GAN
  (yaw, pitch) radians, ``camera_angles`` (3,) EpiGRAF, ``eg3d_label`` (25,); see :mod:`aware3d.cameras`.
* ``light_dir`` (3,): unit vector **toward** the light, world frame.
* ``identity`` / ``expression``: the scene parameters in world units / RGB albedos in [0, 1], laid out as
  :data:`HEAD_IDENTITY_NAMES`, :data:`HEAD_EXPRESSION_NAMES` (heads) and :data:`OBJECT_IDENTITY_NAMES`
  (objects; their expression is empty). :func:`render_head` / :func:`render_object` render *any*
  parameters from *any* cameras.

Determinism: item ``i`` of a dataset with seed ``s`` draws everything from its own
``torch.Generator().manual_seed(s * 1_000_003 + i)`` (order: pose, light, identity, expression,
background), its camera is built on its own, and the per-ray arithmetic is elementwise in a fixed order
(no batched matmuls or reductions whose blocking depends on the batch), so an item is bit-identical
whatever the access order, batch composition or worker count.
"""

from .dataset import SYNTHETIC_DATASETS, SyntheticConfig, SyntheticDataset, SyntheticSample, make_synthetic
from .faces import FaceRender, SyntheticFaceConfig, SyntheticFaceDataset, SyntheticFaceSample, render_faces
from .raycast import Hits, Primitives, Scene
from .render import RenderResult, render_scene
from .scenes import (
    HEAD_EXPRESSION_NAMES, HEAD_IDENTITY_NAMES, HEAD_PRIMITIVE_NAMES, OBJECT_IDENTITY_NAMES, OBJECT_PRIMITIVE_NAMES,
    head_scene, object_scene, render_head, render_object, sample_background, sample_head_params, sample_light,
    sample_object_params,
)

__all__ = [
    "FaceRender", "SyntheticFaceConfig", "SyntheticFaceDataset", "SyntheticFaceSample", "render_faces",
    "HEAD_EXPRESSION_NAMES", "HEAD_IDENTITY_NAMES", "HEAD_PRIMITIVE_NAMES", "OBJECT_IDENTITY_NAMES",
    "OBJECT_PRIMITIVE_NAMES", "SYNTHETIC_DATASETS", "Hits", "Primitives", "RenderResult", "Scene",
    "SyntheticConfig", "SyntheticDataset", "SyntheticSample", "head_scene", "make_synthetic", "object_scene",
    "render_head", "render_object", "render_scene", "sample_background", "sample_head_params", "sample_light",
    "sample_object_params",
]
