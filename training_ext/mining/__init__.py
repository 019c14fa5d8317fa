"""MineGAN / MineGAN++ (arXiv 2104.13742): mine pretrained generators for a small target set."""
