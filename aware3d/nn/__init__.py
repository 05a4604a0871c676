"""Networks that families compose (shared building blocks, no family imports):

- :mod:`.siren`: FiLM-conditioned SIREN field and its mapping network (pi-GAN and the SIREN-based families);
- :mod:`.progressive_discriminator`: pi-GAN's progressive discriminators (pose and latent heads, CoordConv);
- :mod:`.stylegan2`: StyleGAN2 layers, mapping and synthesis networks, discriminator blocks;
- :mod:`.triplane`: tri-plane projection and sampling (EG3D's legacy plane order and the corrected one),
  the tri-plane decoder and its field callback.
- :mod:`.lpips`: the frozen LPIPS-VGG (v0.1) distance from torchvision's VGG16 file and lpips' head file.
"""
