"""Morphable face models (family-agnostic): the Basel Face Model from a user file and a built-in synthetic one.

* :mod:`.layout`: group sizes, Deep3DFaceRecon's constants and :class:`FaceModelData` (the
  ``BFM_model_front.mat`` layout, 0-based).
* :mod:`.bfm`: :func:`load_bfm_mat` / :func:`save_bfm_mat` (the Basel Face Model is licence-restricted: the
  user supplies the file; errors say where it comes from).
* :mod:`.synthetic_model`: :func:`synthetic_face_model`, a closed procedural head in the same layout.
* :mod:`.model`: :class:`FaceCoefficients` -> :class:`MorphableFaceModel` -> :class:`FaceMesh` in aware3d's
  world (:class:`FaceFrame`), and :func:`load_face_model` (path, "synthetic", or ``$AWARE3D_FACE_MODEL``).
* :mod:`.statistics`: :class:`CoefficientStatistics` for whitened codes.
* :mod:`.regressor`: the face-coefficient regressor (:class:`FaceCoefficientRegressor`, trained by
  ``aware3d face-regressor train`` on ``synthetic-faces``), its loss, training loop and checkpoint folder;
  :class:`FaceReconstruction` / :class:`FaceReconstructor`, what every face-reconstruction network returns.
* :mod:`.resnet` / :mod:`.deep3d_import`: Deep3DFaceRecon's ResNet-50 reconstruction network in pure PyTorch
  and the importer of its released ``net_recon`` weights (the user supplies the file).
"""

from .bfm import BFM_FILE_NAME, bfm_origin_help, load_bfm_mat, save_bfm_mat
from .layout import (
    COEFFICIENT_DIM, COEFFICIENT_GROUPS, DEEP3D_CAMERA_DISTANCE, DEEP3D_FOCAL, DEEP3D_IMAGE_SIZE, DEEP3D_INIT_LIGHT,
    EXPRESSION_DIM, IDENTITY_DIM, LIGHTING_DIM, NUM_LANDMARKS, POSE_DIM, TEXTURE_DIM, FaceModelData,
    vertex_face_table,
)
from .model import (
    FACE_MODEL_ENV, FaceCoefficients, FaceFrame, FaceMesh, MorphableFaceModel, euler_rotation, load_face_model,
    sh_basis, sh_shading,
)
from .deep3d_import import Deep3DFaceReconNet, Deep3DWeightsNotFound, load_deep3d_recon
from .regressor import (
    CoefficientWhitening, FaceCoefficientRegressor, FaceReconstruction, FaceReconstructor, RegressorConfig,
    RegressorLossWeights, load_regressor, save_regressor, train_regressor,
)
from .resnet import ResNet50Trunk
from .statistics import CoefficientStatistics, GroupStatistics
from .synthetic_model import EXPRESSION_NAMES, IDENTITY_NAMES, TEXTURE_NAMES, synthetic_face_model

__all__ = [
    "CoefficientWhitening", "Deep3DFaceReconNet", "Deep3DWeightsNotFound", "FaceCoefficientRegressor",
    "FaceReconstruction", "FaceReconstructor", "RegressorConfig", "RegressorLossWeights", "ResNet50Trunk",
    "load_deep3d_recon", "load_regressor", "save_regressor", "train_regressor",
    "BFM_FILE_NAME", "COEFFICIENT_DIM", "COEFFICIENT_GROUPS", "CoefficientStatistics", "DEEP3D_CAMERA_DISTANCE",
    "DEEP3D_FOCAL", "DEEP3D_IMAGE_SIZE", "DEEP3D_INIT_LIGHT", "EXPRESSION_DIM", "EXPRESSION_NAMES", "FACE_MODEL_ENV",
    "FaceCoefficients", "FaceFrame", "FaceMesh", "FaceModelData", "GroupStatistics", "IDENTITY_DIM",
    "IDENTITY_NAMES", "LIGHTING_DIM", "MorphableFaceModel", "NUM_LANDMARKS", "POSE_DIM", "TEXTURE_DIM",
    "TEXTURE_NAMES", "bfm_origin_help", "euler_rotation", "load_bfm_mat", "load_face_model", "save_bfm_mat",
    "sh_basis", "sh_shading", "synthetic_face_model", "vertex_face_table",
]
