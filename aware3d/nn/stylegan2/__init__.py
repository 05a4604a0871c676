"""StyleGAN2 building blocks in pure PyTorch: resampling filters and layers (:mod:`.layers`), the mapping
and synthesis networks (:mod:`.networks`) and the ResNet discriminator parts (:mod:`.discriminator`)."""
