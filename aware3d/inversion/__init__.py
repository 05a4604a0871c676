"""GAN inversion for every family: a camera and a latent (and optionally the generator, by pivotal tuning) that
render a given picture.

* :mod:`.space`: :class:`~.space.LatentSpace`, what a family declares (``Generator3D.inversion_space``): named
  latent groups with their starting values and spreads, and how they compose into ``synthesis``' latent and
  condition.
* :mod:`.config`: the settings (:class:`~.config.InversionConfig`).
* :mod:`.crop`: reading any picture and framing it as the model's training images (``--crop``).
* :mod:`.losses`: pixel, multi-scale SSIM, discriminator-feature and LPIPS terms.
* :mod:`.camera`: the pose grid over the model's prior and the camera parameters.
* :mod:`.latent`: the coarse search and the joint latent + camera optimisation.
* :mod:`.pti`: pivotal tuning of the generator around the found latent.
* :mod:`.invert`: :func:`~.invert.invert`, the whole inversion of one image (the library entry).
* :mod:`.files`: the latent + camera file that ``render`` / ``video --latent`` read.
* :mod:`.plot`: the loss curve picture.

This package imports nothing from the families (they import :mod:`.space`); ``aware3d invert`` is
:mod:`aware3d.tools.invert`.
"""
