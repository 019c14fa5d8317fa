"""Adaptive discriminator augmentation (ADA): a differentiable augmentation pipeline whose
strength ``p`` (a buffer) the training loop adapts to the discriminator's overfitting.

Same constructor arguments as the host's ``AugmentPipe`` (so ``--augpipe`` presets carry
over). Implemented: xflip, rotate90, integer and fractional translation, isotropic and
anisotropic scaling and rotation (composed into one affine warp, resampled bilinearly with
reflection padding), brightness, contrast, luma flip, hue rotation and saturation (one
colour matrix), additive noise and cutout. Each transform applies to each image with
probability ``p`` (times its own multiplier), which keeps augmentations non-leaking for p
well below 1: the generator cannot learn to produce augmented images. The host's
frequency-band filter (``imgfilter``) is not implemented and is rejected if asked for.
"""
import math

import torch
import torch.nn.functional as F

from plugin.persistence import persistent_class


def _eye(n, batch, device):
    return torch.eye(n, device=device).unsqueeze(0).repeat(batch, 1, 1)


def _mat(rows, device):
    """Batched matrix from nested rows of scalars/tensors of shape [N]."""
    n = next(e.shape[0] for r in rows for e in r if torch.is_tensor(e))
    out = [[e if torch.is_tensor(e) else torch.full([n], float(e), device=device) for e in r] for r in rows]
    return torch.stack([torch.stack(r, dim=-1) for r in out], dim=-2)


def _translate2d(tx, ty):
    z, o = torch.zeros_like(tx), torch.ones_like(tx)
    return _mat([[o, z, tx], [z, o, ty], [z, z, o]], tx.device)


def _scale2d(sx, sy):
    z, o = torch.zeros_like(sx), torch.ones_like(sx)
    return _mat([[sx, z, z], [z, sy, z], [z, z, o]], sx.device)


def _rotate2d(theta):
    c, s, z, o = torch.cos(theta), torch.sin(theta), torch.zeros_like(theta), torch.ones_like(theta)
    return _mat([[c, -s, z], [s, c, z], [z, z, o]], theta.device)


@persistent_class(None)
class AugmentPipe(torch.nn.Module):
    def __init__(self,
        # Pixel blitting (each transform applies with probability p * its multiplier; 0 = off).
        xflip           = 0,             # Probability multiplier for x-flip.
        rotate90        = 0,             # Probability multiplier for 90-degree rotations.
        xint            = 0,             # Probability multiplier for integer translation (whole pixels).
        xint_max        = 0.125,         # Range of that translation, fraction of image size.
        # General geometric transformations (one bilinear warp, reflection padding).
        scale           = 0,             # Probability multiplier for isotropic scaling.
        rotate          = 0,             # Probability multiplier for arbitrary rotation.
        aniso           = 0,             # Probability multiplier for anisotropic scaling.
        xfrac           = 0,             # Probability multiplier for fractional translation.
        scale_std       = 0.2,           # Log2 standard deviation of isotropic scaling.
        rotate_max      = 1,             # Rotation range in half turns (1 = +-180 degrees).
        aniso_std       = 0.2,           # Log2 std of anisotropic scaling (x by s, y by 1/s).
        xfrac_std       = 0.125,         # Std of fractional translation, fraction of image size.
        # Colour transformations (one colour matrix; greyscale: its mean gain and offset).
        brightness      = 0,             # Probability multiplier for brightness.
        contrast        = 0,             # Probability multiplier for contrast.
        lumaflip        = 0,             # Probability multiplier for luma flip.
        hue             = 0,             # Probability multiplier for hue rotation.
        saturation      = 0,             # Probability multiplier for saturation.
        brightness_std  = 0.2,           # Std of the additive brightness offset.
        contrast_std    = 0.5,           # Log2 standard deviation of contrast.
        hue_max         = 1,             # Hue rotation range in half turns (1 = +-180 degrees).
        saturation_std  = 1,             # Log2 standard deviation of saturation.
        # Image-space filtering: not implemented in the embedded host.
        imgfilter       = 0,             # Must be 0; anything else raises ValueError.
        imgfilter_bands = [1, 1, 1, 1],  # Ignored (host: per-band probability multipliers).
        imgfilter_std   = 1,             # Ignored (host: log2 std of band amplification).
        # Image-space corruptions.
        noise           = 0,             # Probability multiplier for additive Gaussian noise.
        cutout          = 0,             # Probability multiplier for cutout (zero a square).
        noise_std       = 0.1,           # Noise sigma is |N(0, 1)| * noise_std.
        cutout_size     = 0.5,           # Side of the cutout square, fraction of image size.
    ):
        super().__init__()
        if imgfilter:
            raise ValueError('augment: the frequency-band filter (imgfilter, presets bgcf*) is not available in the '
                             'embedded host; use --augpipe bgc or a preset without "f"')
        self.register_buffer('p', torch.zeros([]))
        self.geom = dict(xflip=float(xflip), rotate90=float(rotate90), xint=float(xint), scale=float(scale),
                         rotate=float(rotate), aniso=float(aniso), xfrac=float(xfrac))
        self.color = dict(brightness=float(brightness), contrast=float(contrast), lumaflip=float(lumaflip),
                          hue=float(hue), saturation=float(saturation))
        self.noise, self.cutout = float(noise), float(cutout)
        self.xint_max, self.scale_std, self.rotate_max = float(xint_max), float(scale_std), float(rotate_max)
        self.aniso_std, self.xfrac_std = float(aniso_std), float(xfrac_std)
        self.brightness_std, self.contrast_std = float(brightness_std), float(contrast_std)
        self.hue_max, self.saturation_std = float(hue_max), float(saturation_std)
        self.noise_std, self.cutout_size = float(noise_std), float(cutout_size)

    def _happens(self, strength, n, device):
        """Per-image mask: transform with probability p * strength."""
        return torch.rand([n], device=device) < self.p * strength

    def _gate(self, value, identity, strength, n, device):
        return torch.where(self._happens(strength, n, device), value, torch.full_like(value, identity))

    def _geometry(self, n, device, h, w):
        g = self.geom
        m = _eye(3, n, device)
        if g['xflip']:
            flip = self._gate(torch.randint(2, [n], device=device).float(), 0, g['xflip'], n, device)
            m = m @ _scale2d(1 - 2 * flip, torch.ones_like(flip))
        if g['rotate90']:
            k = self._gate(torch.randint(4, [n], device=device).float(), 0, g['rotate90'], n, device)
            m = m @ _rotate2d(k * (math.pi / 2))
        if g['xint']:
            t = (torch.rand([n, 2], device=device) * 2 - 1) * self.xint_max
            t = torch.where(self._happens(g['xint'], n, device).unsqueeze(1), t, torch.zeros_like(t))
            size = torch.tensor([w, h], dtype=t.dtype, device=device)
            t = torch.round(t * size) / size            # whole pixels, as the host's integer translation
            m = m @ _translate2d(t[:, 0] * 2, t[:, 1] * 2)
        if g['scale']:
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.scale_std), 1, g['scale'], n, device)
            m = m @ _scale2d(s, s)
        if g['rotate']:
            theta = (torch.rand([n], device=device) * 2 - 1) * math.pi * self.rotate_max
            m = m @ _rotate2d(self._gate(theta, 0, g['rotate'], n, device))
        if g['aniso']:
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.aniso_std), 1, g['aniso'], n, device)
            m = m @ _scale2d(s, 1 / s)
        if g['xfrac']:
            t = torch.randn([n, 2], device=device) * self.xfrac_std
            t = torch.where(self._happens(g['xfrac'], n, device).unsqueeze(1), t, torch.zeros_like(t))
            m = m @ _translate2d(t[:, 0] * 2, t[:, 1] * 2)
        return m

    def _colour(self, n, device):
        c = self.color
        m = _eye(4, n, device)
        luma = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=device) / math.sqrt(3)
        vv = torch.outer(luma, luma)
        if c['brightness']:
            b = self._gate(torch.randn([n], device=device) * self.brightness_std, 0, c['brightness'], n, device)
            t = _eye(4, n, device)
            t[:, :3, 3] = b.unsqueeze(1)
            m = t @ m
        if c['contrast']:
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.contrast_std), 1, c['contrast'], n, device)
            t = _eye(4, n, device)
            t[:, :3, :3] *= s.reshape(n, 1, 1)
            m = t @ m
        if c['lumaflip']:
            i = self._gate(torch.randint(2, [n], device=device).float(), 0, c['lumaflip'], n, device)
            m = (_eye(4, n, device) - 2 * vv * i.reshape(n, 1, 1)) @ m
        if c['hue']:
            theta = self._gate((torch.rand([n], device=device) * 2 - 1) * math.pi * self.hue_max, 0, c['hue'], n, device)
            m = _rotate_about(luma[:3], theta) @ m
        if c['saturation']:
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.saturation_std), 1, c['saturation'], n,
                           device)
            m = (vv + (torch.eye(4, device=device) - vv) * s.reshape(n, 1, 1)) @ m
        return m

    def forward(self, images):
        n, ch, h, w = images.shape
        device = images.device
        if any(self.geom.values()):
            m = self._geometry(n, device, h, w)
            moved = (m != _eye(3, n, device)).flatten(1).any(1)
            if moved.any():
                # Only images that drew a transform are resampled: the others stay bit-exact.
                idx = moved.nonzero().squeeze(1)
                # affine_grid maps output coordinates to input coordinates in [-1, 1]
                grid = F.affine_grid(m[idx, :2, :].to(images.dtype), [len(idx), ch, h, w], align_corners=False)
                warped = F.grid_sample(images[idx], grid, mode='bilinear', padding_mode='reflection',
                                       align_corners=False)
                images = images.index_put((idx,), warped)
        if any(self.color.values()):
            m = self._colour(n, device).to(images.dtype)
            if ch == 3:
                images = (m[:, :3, :3] @ images.reshape(n, 3, h * w) + m[:, :3, 3:]).reshape(n, ch, h, w)
            else:      # greyscale: the mean gain and offset of the colour transform
                gain = m[:, :3, :3].sum(2).mean(1).reshape(n, 1, 1, 1)
                images = images * gain + m[:, :3, 3].mean(1).reshape(n, 1, 1, 1)
        if self.noise:
            sigma = self._gate(torch.randn([n], device=device).abs() * self.noise_std, 0, self.noise, n, device)
            images = images + torch.randn_like(images) * sigma.reshape(n, 1, 1, 1).to(images.dtype)
        if self.cutout:
            size = self._gate(torch.full([n], self.cutout_size, device=device), 0, self.cutout, n, device)
            centre = torch.rand([n, 2], device=device)
            ys = ((torch.arange(h, device=device) + 0.5) / h).reshape(1, h, 1)
            xs = ((torch.arange(w, device=device) + 0.5) / w).reshape(1, 1, w)
            keep = ((xs - centre[:, 0].reshape(n, 1, 1)).abs() >= size.reshape(n, 1, 1) / 2) | \
                   ((ys - centre[:, 1].reshape(n, 1, 1)).abs() >= size.reshape(n, 1, 1) / 2)
            images = images * keep.unsqueeze(1).to(images.dtype)
        return images


def _rotate_about(axis, theta):
    """Batched 4x4 rotation by ``theta`` about the 3D unit ``axis`` (Rodrigues)."""
    n = theta.shape[0]
    x, y, z = axis.tolist()
    c, s = torch.cos(theta), torch.sin(theta)
    k = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=torch.float32, device=theta.device)
    r = torch.eye(3, device=theta.device) + s.reshape(n, 1, 1) * k + (1 - c).reshape(n, 1, 1) * (k @ k)
    out = _eye(4, n, theta.device)
    out[:, :3, :3] = r
    return out


AUGPIPE_NAMES = ('blit', 'geom', 'color', 'filter', 'noise', 'cutout', 'bg', 'bgc', 'bgcf', 'bgcfn', 'bgcfnc')
