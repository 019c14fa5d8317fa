"""GAN Cocktail (arXiv 2106.03847): merge pretrained generators by rooting, averaging and
fine-tuning on generated data. See pipeline.py for the stages."""
